"""lookalike.kernels"""
