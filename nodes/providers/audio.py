"""Voice and effect stems on the timeline: each plan voice line at its time, each effect at its onset.

The mix (ducking, loudness) is the assembly stage's; these return one mono float32 stem each,
exactly round(duration_s * rate) samples long, plus the records of the calls that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from lookalike.errors import InputError

from .base import AudioResult, CallRecord, SfxRequest, VoiceRequest
from .hub import Providers

MAX_SPEEDUP = 1.6
_FADE_S = 0.01


def resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    if rate == to:
        return x.astype(np.float32, copy=False)
    g = gcd(rate, to)
    return signal.resample_poly(x, to // g, rate // g, axis=-1).astype(np.float32)


def _place(track: np.ndarray, at_s: float, x: np.ndarray, rate: int, gain: float = 1.0) -> None:
    at = int(round(at_s * rate))
    if at >= len(track) or len(x) == 0:
        return
    seg = x[: len(track) - at] * gain
    if at < 0:
        seg, at = seg[-at:], 0
    track[at : at + len(seg)] += seg


def voice_track(
    hub: Providers,
    lines: Sequence[Mapping[str, Any]],
    duration_s: float,
    *,
    rate: int = 48000,
    out_dir: Path,
    provider: str | None = None,
    clone_from: Path | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[CallRecord]]:
    """Speech for plan voice lines {"text", "start_s", "end_s"?, "emotion"?, "pace"?, "voice"?} placed at
    their start times. A line longer than its slot (to `end_s`, or the next line) is asked for again
    faster (up to MAX_SPEEDUP x its pace), then faded out at the slot's end."""
    n = int(round(duration_s * rate))
    if n <= 0:
        raise InputError(f"voice track duration {duration_s} s is not positive")
    track = np.zeros(n, np.float32)
    records: list[CallRecord] = []
    ordered = sorted(lines, key=lambda ln: float(ln.get("start_s", 0.0)))
    for i, line in enumerate(ordered):
        start = float(line.get("start_s", 0.0))
        nxt = float(ordered[i + 1].get("start_s", duration_s)) if i + 1 < len(ordered) else duration_s
        slot = min(float(line.get("end_s", nxt)), nxt, duration_s) - start
        if slot <= 0:
            raise InputError(f"voice line {i} starts at {start} s, outside the {duration_s:.2f} s timeline")
        req = VoiceRequest(
            text=str(line.get("text", "")),
            out_dir=out_dir,
            voice=str(line.get("voice", "")),
            emotion=str(line.get("emotion", "neutral")),
            pace=float(line.get("pace", 1.0)),
            seed=seed + i,
            clone_from=clone_from,
        )
        got: AudioResult = hub.speak(req, provider)
        records.append(got.record)
        if got.duration_s > slot:
            faster = min(2.0, req.pace * min(MAX_SPEEDUP, got.duration_s / slot * 1.05))
            if faster > req.pace:
                import dataclasses

                got = hub.speak(dataclasses.replace(req, pace=faster), provider)
                records.append(got.record)
        x = resample(got.samples, got.rate, rate)[: int(round(slot * rate))]
        fade = min(len(x), int(_FADE_S * rate))
        if fade:
            x = x.copy()
            x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        _place(track, start, x, rate)
    return track, records


def sfx_track(
    hub: Providers,
    events: Sequence[Mapping[str, Any]],
    duration_s: float,
    *,
    rate: int = 48000,
    out_dir: Path,
    provider: str | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, list[CallRecord]]:
    """Effects {"kind": whoosh|hit|riser, "at_s", "gain"?} on the timeline. A hit starts at its onset;
    a whoosh peaks at it (60 % into the effect); a riser ends on it. One call per distinct kind."""
    n = int(round(duration_s * rate))
    if n <= 0:
        raise InputError(f"effects track duration {duration_s} s is not positive")
    track = np.zeros(n, np.float32)
    cache: dict[str, np.ndarray] = {}
    records: list[CallRecord] = []
    for ev in events:
        kind = str(ev.get("kind", ""))
        if kind not in cache:
            got = hub.effect(SfxRequest(kind=kind, out_dir=out_dir, seed=seed), provider)
            cache[kind] = resample(got.samples, got.rate, rate)
            records.append(got.record)
        x = cache[kind]
        length = len(x) / rate
        at = float(ev["at_s"]) - {"hit": 0.0, "whoosh": 0.6 * length, "riser": length}.get(kind, 0.0)
        _place(track, at, x, rate, float(ev.get("gain", 1.0)))
    return track, records
