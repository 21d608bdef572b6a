"""lookalike.nodes"""
