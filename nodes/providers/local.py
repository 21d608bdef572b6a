"""The offline providers, the defaults: no key, no network.

- `LocalVideo`: nodes.generate's SceneRenderer compositor (the subject along the sample's camera path
  in the sample's palette and grade). `frames` yields frames directly; `generate` writes an MP4 for
  callers that want a file like any other provider's.
- `EspeakVoice`: espeak-ng (Debian package `espeak-ng`), pace and emotion mapped onto its rate, pitch
  and pitch range.
- `LocalMusic`: nodes.music.render_music at the sample's tempo and key, sections from the plan.
- `LocalSfx`: a small synthesized library (whoosh, hit, riser, click).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
from lookalike.nodes import generate, media, music
from scipy import signal

from lookalike.errors import InputError, ProviderError

from .base import (
    SFX_KINDS,
    AudioResult,
    CallRecord,
    MusicRequest,
    SfxRequest,
    VideoRequest,
    VideoResult,
    VoiceRequest,
)


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class LocalVideo:
    name = "local"
    models = ("compositor-1",)

    def __init__(self, subject_rgba: np.ndarray | None = None) -> None:
        self.subject_rgba = subject_rgba

    def frames(
        self, request: VideoRequest, start: int, end: int, subject_rgba: np.ndarray | None = None
    ) -> Iterator[np.ndarray]:
        """Frames for ABSOLUTE indices [start, end) of the request's scene, straight from the renderer."""
        subject = self.subject_rgba if subject_rgba is None else subject_rgba
        return generate.render_frames(
            request.scene,
            start,
            end,
            width=request.width,
            height=request.height,
            subject_rgba=subject,
            seed=request.seed,
        )

    def generate(self, request: VideoRequest) -> VideoResult:
        scene = request.scene
        start, end = int(scene["start_frame"]), int(scene["end_frame"])
        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / f"local-scene{scene.get('index', 0)}-{request.seed}.mp4"
        with media.SegmentWriter(
            path, width=request.width, height=request.height, fps=_fps_fraction(request.fps), crf=16
        ) as w:
            for frame in self.frames(request, start, end):
                w.write(frame)
        return VideoResult(
            path, CallRecord("local", "video", model=self.models[0], units=end - start, unit="frames")
        )


# ---------------------------------------------------------------- voice

# emotion -> (rate factor, pitch 0..99, pause between words in 10 ms units, amplitude 0..200);
# espeak-ng 1.51 (Debian 12) has no pitch-range option, so expressiveness is pitch, pace and pauses
_ESPEAK_EMOTION = {
    "neutral": (1.0, 50, 0, 100),
    "calm": (0.9, 42, 2, 90),
    "happy": (1.08, 62, 0, 110),
    "excited": (1.18, 70, 0, 120),
    "sad": (0.85, 35, 4, 85),
    "serious": (0.95, 40, 1, 100),
    "angry": (1.1, 45, 0, 130),
}
ESPEAK_WPM = 165


def check_line(request: VoiceRequest) -> str:
    text = " ".join(request.text.split())
    if not text:
        raise InputError(
            "the voice-over line is empty", hint="give the line some text, or delete it from the plan"
        )
    if request.emotion not in _ESPEAK_EMOTION:
        raise InputError(
            f"unknown emotion {request.emotion!r}", hint=f"use one of {', '.join(_ESPEAK_EMOTION)}"
        )
    if not 0.5 <= request.pace <= 2.0:
        raise InputError(
            f"pace {request.pace} is out of range", hint="use a pace between 0.5 and 2.0 (1.0 is normal)"
        )
    return text


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the rate of a 16-bit PCM WAV file's bytes."""
    with wave.open(io.BytesIO(data)) as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"expected 16-bit PCM, got {8 * width}-bit")
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, channels).mean(axis=1), rate


class EspeakVoice:
    """Speech from espeak-ng. `voice` is an espeak-ng voice name (default: the request's language)."""

    name = "local"
    models = ("espeak-ng",)

    def __init__(self, binary: str = "espeak-ng") -> None:
        self.binary = binary

    def speak(self, request: VoiceRequest) -> AudioResult:
        text = check_line(request)
        exe = shutil.which(self.binary)
        if exe is None:
            raise ProviderError(
                "the local voice needs espeak-ng, which is not installed",
                transient=False,
                hint="install it (apt-get install -y espeak-ng) or set LOOKALIKE_ELEVENLABS_API_KEY",
            )
        rate_f, pitch, gap, amp = _ESPEAK_EMOTION[request.emotion]
        wpm = int(round(ESPEAK_WPM * rate_f * request.pace))
        cmd = [
            exe,
            "-v",
            request.voice or request.language,
            "-s",
            str(wpm),
            "-p",
            str(pitch),
            "-g",
            str(gap),
        ]
        cmd += ["-a", str(amp), "--stdout", "--stdin"]
        try:
            done = subprocess.run(
                cmd, input=text.encode(), capture_output=True, timeout=request.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ProviderError(f"espeak-ng took over {request.timeout_s:.0f} s", transient=True) from exc
        if done.returncode != 0 or not done.stdout:
            raise ProviderError(
                f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()[:200]}",
                transient=False,
                hint="check the voice name (espeak-ng --voices lists them)",
            )
        samples, rate = read_wav(done.stdout)
        return AudioResult(
            samples, rate, CallRecord("local", "voice", model="espeak-ng", units=len(text), unit="characters")
        )


# ---------------------------------------------------------------- music


class LocalMusic:
    name = "local"
    models = ("groove-1",)

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate

    def compose(self, request: MusicRequest) -> AudioResult:
        tempo = request.tempo_bpm if request.tempo_bpm and request.tempo_bpm > 0 else music.DEFAULT_TEMPO_BPM
        samples = music.render_music(
            request.duration_s,
            request.tempo_bpm,
            rate=self.rate,
            key=request.key,
            target_lufs=request.target_lufs,
            seed=request.seed,
            section_starts_s=tuple(request.section_starts_s),
        )
        return AudioResult(
            samples,
            self.rate,
            CallRecord("local", "music", model=self.models[0], units=request.duration_s, unit="seconds"),
            tempo_bpm=float(tempo),  # its beats are placed, not estimated: no need to measure them
        )


# ---------------------------------------------------------------- sound effects

_SFX_LENGTH_S = {"whoosh": 0.8, "hit": 0.6, "riser": 2.0, "click": 0.12}


def synth_sfx(kind: str, rate: int, duration_s: float = 0.0, seed: int = 0) -> np.ndarray:
    """One effect as mono float32 peaking at -3 dBFS.

    whoosh: band-passed noise whose centre sweeps 300 Hz -> 3 kHz -> 600 Hz under a swell;
    hit: a pitch-dropping sine thump (120 -> 45 Hz) with a noise transient, its onset at sample 0;
    riser: a rising sine (200 Hz -> 2 kHz) over brightening noise, growing to its end;
    click: a bright transient, a saturated noise burst (6 ms decay) and 3 kHz ping (15 ms) over a
    150 Hz knock (25 ms); its spectral centroid is above 1.5 kHz, where the planner calls an onset a click.
    The onset of a hit or a click is at t=0; a whoosh peaks at 60 % of its length; a riser peaks at
    its end.
    """
    if kind not in SFX_KINDS:
        raise InputError(f"unknown sound effect {kind!r}", hint=f"use one of {', '.join(SFX_KINDS)}")
    length = duration_s if duration_s > 0 else _SFX_LENGTH_S[kind]
    n = max(1, int(round(length * rate)))
    t = np.arange(n) / rate
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, SFX_KINDS.index(kind)])
    noise = rng.standard_normal(n)
    if kind == "whoosh":
        u = t / length
        centre = 300.0 + 2700.0 * np.sin(np.pi * np.minimum(u / 1.2, 1.0)) ** 2
        out = np.zeros(n)
        block = max(1, n // 32)
        for s in range(0, n, block):  # a time-varying band-pass, one filter per block
            fc = float(centre[min(n - 1, s + block // 2)])
            sos = signal.butter(
                2, [fc / 1.5, min(fc * 1.5, 0.45 * rate)], btype="band", fs=rate, output="sos"
            )
            out[s : s + block] = signal.sosfilt(sos, noise[max(0, s - 2048) : s + block])[
                -len(out[s : s + block]) :
            ]
        env = np.exp(-(((u - 0.6) / 0.22) ** 2))
        x = out * env
    elif kind == "hit":
        freq = 45.0 + 75.0 * np.exp(-t / 0.04)
        thump = np.sin(2 * np.pi * np.cumsum(freq) / rate) * np.exp(-t / 0.18)
        x = thump + 0.6 * noise * np.exp(-t / 0.012)
    elif kind == "click":
        # Saturated, so the burst carries more energy under the same peak, with a little low knock:
        # a bright click alone barely moves the low bands and is lost among a groove's drums.
        burst = noise * np.exp(-t / 0.006) + np.sin(2 * np.pi * 3000.0 * t) * np.exp(-t / 0.015)
        x = np.tanh(3.0 * burst) + 0.5 * np.sin(2 * np.pi * 150.0 * t) * np.exp(-t / 0.025)
    else:
        u = t / length
        sweep = np.sin(2 * np.pi * np.cumsum(200.0 * 10.0**u) / rate)
        sos = signal.butter(2, 1500.0, btype="high", fs=rate, output="sos")
        x = (0.6 * sweep + 0.4 * signal.sosfilt(sos, noise)) * u**2
        x *= np.minimum(1.0, (n - np.arange(n)) / (0.005 * rate))  # no click at the end
    peak = float(np.max(np.abs(x))) or 1.0
    return (x / peak * 10 ** (-3 / 20)).astype(np.float32)


class LocalSfx:
    name = "local"
    models = ("synth-1",)

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate

    def effect(self, request: SfxRequest) -> AudioResult:
        x = synth_sfx(request.kind, self.rate, request.duration_s, request.seed)
        return AudioResult(
            x,
            self.rate,
            CallRecord("local", "sfx", model=self.models[0], units=len(x) / self.rate, unit="seconds"),
        )


__all__ = ["LocalVideo", "EspeakVoice", "LocalMusic", "LocalSfx", "synth_sfx", "read_wav", "check_line"]
