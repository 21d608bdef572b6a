"""lookalike.coordinator"""
