"""lookalike.client"""
