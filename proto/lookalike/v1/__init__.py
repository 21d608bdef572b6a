"""Generated gRPC stubs for lookalike.v1 (built from proto/lookalike/v1; never edit by hand)."""
