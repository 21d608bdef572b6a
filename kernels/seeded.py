"""Counter-based randomness: the same numbers from (seed, frame, ...) on every node and device.

A stateful generator would make frame k depend on how many numbers the node drew before it, and
numpy's and cupy's generators differ. Instead every random value is a hash of its key and its
position, done in uint32 integer arithmetic, which numpy and cupy compute bit for bit alike. So a
frame renders the same on whichever node, attempt or device renders it, and a chunk of frames
equals the same frames of a whole-video render.

The hash is Chris Wellons' "lowbias32" (two multiply-xorshift rounds, a full-avalanche 32-bit
permutation). Normal deviates are Irwin-Hall sums of the four bytes of one hash: mean 0, variance
exactly 1, tails cut at about 3.45 sigma, which suits film grain and avoids transcendental
functions whose last bit differs between CPU and GPU maths libraries.
"""

from __future__ import annotations

import math
from typing import Any

_M32 = 0xFFFFFFFF
# Irwin-Hall of four uniform bytes: mean 4 * 127.5, variance 4 * (256**2 - 1) / 12.
_IH_MEAN = 510.0
_IH_STD = math.sqrt(4 * (256**2 - 1) / 12.0)


def mix32(x: int) -> int:
    """lowbias32 on a Python int (the scalar twin of `hash_u32`)."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x


def key(*parts: int | str) -> int:
    """A 32-bit key from any number of ints (any sign or size) and short strings (salts)."""
    k = 0x9E3779B9
    for p in parts:
        if isinstance(p, str):
            words = [b for b in p.encode()]
        else:
            v = int(p) & 0xFFFFFFFFFFFFFFFF
            words = [v & _M32, v >> 32]
        for w in words:
            k = mix32(k ^ mix32(w + 0x632BE5AB))
    return k


def hash_u32(xp: Any, counters: Any, k: int) -> Any:
    """lowbias32(counters XOR mixed key) elementwise; uint32 in, uint32 out."""
    x = counters.astype(xp.uint32) ^ xp.uint32(mix32(k))
    x ^= x >> xp.uint32(16)
    x *= xp.uint32(0x7FEB352D)
    x ^= x >> xp.uint32(15)
    x *= xp.uint32(0x846CA68B)
    x ^= x >> xp.uint32(16)
    return x


def uniform(xp: Any, k: int, n: int) -> Any:
    """n float32 uniforms in [0, 1) (24-bit resolution) for key k."""
    h = hash_u32(xp, xp.arange(n, dtype=xp.uint32), k)
    return (h >> xp.uint32(8)).astype(xp.float32) * xp.float32(1.0 / (1 << 24))


def normal(xp: Any, k: int, n: int) -> Any:
    """n float32 deviates with mean 0 and variance 1 (Irwin-Hall of 4 bytes, see the module doc)."""
    h = hash_u32(xp, xp.arange(n, dtype=xp.uint32), k)
    m = xp.uint32(255)
    s = (h & m) + ((h >> xp.uint32(8)) & m) + ((h >> xp.uint32(16)) & m) + (h >> xp.uint32(24))
    return (s.astype(xp.float32) - xp.float32(_IH_MEAN)) * xp.float32(1.0 / _IH_STD)


def integers(xp: Any, k: int, n: int, high: int) -> Any:
    """n int64 values in [0, high) for key k (modulo bias below 2**-16 for high < 65536)."""
    h = hash_u32(xp, xp.arange(n, dtype=xp.uint32), k)
    return (h.astype(xp.uint64) % xp.uint64(high)).astype(xp.int64)
