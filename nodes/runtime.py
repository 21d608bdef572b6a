"""What a node does, as plain library code: the gRPC servicer in server.py is a thin adapter over it,
and tests call it directly.

Media crosses machines only through the segment store: inputs are read by key (in place for the
folder store, through a local cache for S3), outputs are written under the attempt's key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lookalike.errors import InputError
from lookalike.obs import BYTES_STORED, FRAMES, get_logger

log = get_logger("node")


@dataclass(frozen=True)
class SegmentResult:
    key: str
    n_frames: int
    bytes: int
    sha256: str
    seconds: float


@dataclass(frozen=True)
class Format:
    width: int
    height: int
    fps: Fraction
    codec: str = "libx264"
    crf: int = 20
    preset: str = "veryfast"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class NodeRuntime:
    """One node's work. Thread-safe: the gRPC server calls it from several threads."""

    def __init__(self, store, *, node_id: str = "local", cache_dir: str | None = None,
                 fail_kinds: frozenset[str] = frozenset(), provider_settings=None) -> None:
        self.store = store
        self.fail_kinds = fail_kinds
        # Generation providers (Runway, Veo, ElevenLabs) as configured at node start-up; None: local only.
        self.provider_settings = provider_settings
        # Where LPIPS/FID weights live (nodes.score.ScoreConfig); None: those measures are reported missing.
        self.score_config = None
        # A vision-language captioner (nodes.vision) when a key is configured; None: no captions.
        self.captioner = None
        # The learned shot detector (nodes.shots_learned) run beside the classic one, loaded once at
        # start by use_shot_weights(); None: classic only, and `shot_note` says why.
        from lookalike.nodes.shots_learned import NO_WEIGHTS

        self.shot_model = None
        self.shot_note = NO_WEIGHTS
        self.node_id = node_id
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="lookalike-node-"))
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._renderers: dict[tuple, object] = {}
        self._subjects: dict[str, np.ndarray] = {}
        # The array module the effect and transition kernels run on (cupy on a GPU node: frames go to
        # the device once per range and come back once, for the encoder); set with use_device().
        self.xp = np

    def use_device(self, device: str) -> None:
        """Compute on "cpu", "gpu" (CuPy; a clear error when it cannot work) or "auto"."""
        from lookalike.kernels.xp import device_module

        self.xp = device_module(device)
        log.info("node_device", node=self.node_id, device=device, array_module=self.xp.__name__)

    def use_shot_weights(self, path: str | None) -> None:
        """Load the learned shot detector from `path` (LOOKALIKE_SHOT_WEIGHTS) once, and say in the log
        which shot detector this node runs and why. A missing or unusable file is not an error: the
        node runs the classic detector, and every analysis it merges records why."""
        from lookalike.nodes import shots_learned

        if not path:  # the default: classic alone (it wins bench/shots.py; shots_learned says why)
            self.shot_model, self.shot_note = None, shots_learned.NO_WEIGHTS
            log.info("node_shot_detector", node=self.node_id, detector="classic", reason=self.shot_note)
            return
        packaged = str(path).strip().lower() == shots_learned.PACKAGED
        self.shot_model, self.shot_note = shots_learned.load_shot_model(None if packaged else path)
        if self.shot_model is not None:
            log.info("node_shot_detector", node=self.node_id, detector="classic+learned", weights=self.shot_model.path,
                     parameters=self.shot_model.parameters)
        elif path:  # asked for and not usable: worth a warning, the analysis runs without it
            log.warning("node_shot_detector", node=self.node_id, detector="classic", weights=str(path),
                        reason=self.shot_note)
        else:
            log.info("node_shot_detector", node=self.node_id, detector="classic", reason=self.shot_note)

    # -- store access -------------------------------------------------------------------------
    def local(self, key: str) -> str:
        """A local file path holding the object at `key` (in place for a folder store)."""
        path = self.store.local_path(key)
        if path is not None:
            if not os.path.exists(path):
                from lookalike.errors import NotFoundError

                raise NotFoundError(f"no object {key!r} in the segment store {self.store.url}")
            return path
        dest = self.cache_dir / "objects" / key
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.store.get_file(key, str(dest))
        return str(dest)

    def _scratch(self, suffix: str) -> str:
        fd, path = tempfile.mkstemp(suffix=suffix, dir=self.cache_dir)
        os.close(fd)
        return path

    def _put(self, key: str, path: str, kind: str) -> tuple[int, str]:
        size = os.path.getsize(path)
        digest = _sha256(path)
        self.store.put_file(key, path)
        BYTES_STORED.labels(kind).inc(size)
        return size, digest

    # -- probing and analysis -----------------------------------------------------------------
    def probe(self, key: str, check: str = "") -> dict:
        """MediaInfo of a stored file; check="sample" also refuses what cannot be remade, check="subject"
        refuses what is not an image."""
        from lookalike.nodes import media

        path = self.local(key)
        if check == "subject":
            from lookalike.nodes import generate

            rgba = generate.load_subject(path, cut=False)
            return {"width": int(rgba.shape[1]), "height": int(rgba.shape[0]), "kind": "image"}
        info = media.probe(path)
        if check == "sample":
            media.validate_sample(info)
        if check == "media":
            kind = media.validate_media(info)
            media.check_decodes(info)
            return dict(media_info_dict(info), kind=kind)
        if check == "music" and not info.has_audio:
            raise InputError(f"{Path(path).name} has no sound to use as music", hint="give an audio file (M4A, MP3, WAV, OGG)")
        return media_info_dict(info)

    def analyze_range(self, sample_key: str, start: int, end: int) -> dict:
        from lookalike.nodes import analysis

        feats = analysis.analyze_range(self.local(sample_key), start, end)
        FRAMES.labels("analyze", self.node_id).inc(max(0, end - start))
        return feats

    def analyze_audio(self, sample_key: str, *, transcribe: bool = True) -> dict:
        from lookalike.nodes import analysis

        if not transcribe:
            return analysis.analyze_audio(self.local(sample_key), transcriber=None)
        return analysis.analyze_audio(self.local(sample_key))

    def merge_analysis(self, sample_key: str, ranges: list[dict], audio: dict) -> dict:
        from lookalike.nodes import analysis

        return analysis.merge_ranges(self.local(sample_key), ranges, audio, learned=self.shot_model,
                                     learned_note=self.shot_note)

    def analyze_vision(self, sample_key: str, doc: dict) -> dict:
        """Faces, on-screen text and (with a configured captioner) a caption per scene."""
        from lookalike.nodes import vision

        return vision.analyze_vision(self.local(sample_key), doc, captioner=self.captioner)

    def decode(self, key: str, start: int, end: int, size: tuple[int, int] | None) -> Iterator[tuple[int, float, np.ndarray]]:
        from lookalike.nodes import media

        yield from media.iter_frames(self.local(key), start, end, size=size)

    # -- rendering ----------------------------------------------------------------------------
    def _subject(self, subject_key: str, seed: int) -> np.ndarray:
        from lookalike.nodes import generate

        cache_key = subject_key or f"synth:{seed}"
        with self._lock:
            if cache_key not in self._subjects:
                self._subjects[cache_key] = (
                    generate.load_subject(self.local(subject_key)) if subject_key else generate.synth_subject(seed)
                )
            return self._subjects[cache_key]

    def generate_scene(self, scene: dict, fmt: Format, output_key: str, *, subject_key: str = "", seed: int = 0,
                       subject_seed: int = 0, sample_key: str = "") -> dict:
        """A provider scene's footage, generated once (with the provider's fallback order) and put in the
        store under `output_key`, so that every node rendering one of its ranges conforms the same clip
        and the provider is paid once. A fallback to the compositor stores nothing: the ranges render
        locally, as the fallback would have."""
        from lookalike.nodes import providers

        hub = providers.hub_for(self.provider_settings or providers.ProviderSettings())
        source = self._scene_source(scene, fmt, sample_key) if _video_to_video(scene) else None
        clip = hub.scene_clip(scene, width=fmt.width, height=fmt.height, fps=float(fmt.fps),
                              subject_rgba=self._subject(subject_key, subject_seed), seed=seed, source_video=source)
        record = clip.record.to_dict()
        if clip.clip is None:
            return {"key": "", "provider": clip.provider, "record": record}
        self.store.put_file(output_key, clip.clip.path)
        BYTES_STORED.labels("clip").inc(os.path.getsize(clip.clip.path))
        return {"key": output_key, "provider": clip.provider, "record": record}

    def _scene_source(self, scene: dict, fmt: Format, sample_key: str):
        """The sample's frames of this scene as a small H.264 clip (at most 1280 px wide), for a
        video-to-video provider to restyle."""
        import hashlib
        from pathlib import Path

        from lookalike.nodes import media

        if not sample_key:
            raise InputError(f"scene {scene.get('index')} asks for video-to-video but no sample was given")
        s0, s1 = int(scene["start_frame"]), int(scene["end_frame"])
        scale = min(1.0, 1280 / fmt.width)
        w, h = 2 * round(fmt.width * scale / 2), 2 * round(fmt.height * scale / 2)
        name = hashlib.sha256(json.dumps([sample_key, s0, s1, w, h]).encode()).hexdigest()[:24]
        dest = Path(self.cache_dir) / "sources" / f"{name}.mp4"
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".part.mp4")
            with media.SegmentWriter(tmp, width=w, height=h, fps=fmt.fps, crf=23) as out:
                for _, _, f in media.iter_frames(self.local(sample_key), s0, s1, size=(w, h)):
                    out.write(f)
            os.replace(tmp, dest)
        return dest

    def _source(self, scene: dict, fmt: Format, subject_key: str, seed: int, subject_seed: int):
        """What draws the scene's frames (`.frame(i)`): its stored provider clip, or the compositor."""
        if scene.get("clip_key"):
            return _ClipSource(self._clip(scene, fmt))
        if (scene.get("source") or {}).get("kind") == "media":
            return self._footage(scene, fmt)
        return self._renderer(scene, fmt, subject_key, seed, subject_seed)

    def _footage(self, scene: dict, fmt: Format):
        """The user's clip or photo a footage scene is cut from, conformed to it (cached per scene: the
        colour match is measured once)."""
        from lookalike.nodes.footage import FootageSource

        key = ("footage", json.dumps(scene, sort_keys=True), fmt.width, fmt.height)
        with self._lock:
            f = self._renderers.get(key)
        if f is None:
            f = FootageSource(self.local(scene["source"]["key"]), scene, fmt.width, fmt.height, fps=float(fmt.fps),
                              xp=self.xp)
            with self._lock:
                if len(self._renderers) > 8:
                    self._renderers.clear()
                self._renderers[key] = f
        return f

    def _clip(self, scene: dict, fmt: Format):
        """The stored provider clip of a scene, conformed to it (cached: the grade is solved once)."""
        from lookalike.nodes.providers.conform import ConformedClip

        key = ("clip", json.dumps(scene, sort_keys=True), fmt.width, fmt.height)
        with self._lock:
            c = self._renderers.get(key)
        if c is None:
            c = ConformedClip(self.local(scene["clip_key"]), scene, fmt.width, fmt.height,
                              provider=str(scene.get("provider") or "provider"))
            with self._lock:
                if len(self._renderers) > 8:
                    self._renderers.clear()
                self._renderers[key] = c
        return c

    def _renderer(self, scene: dict, fmt: Format, subject_key: str, seed: int, subject_seed: int):
        from lookalike.nodes import generate

        key = (json.dumps(scene, sort_keys=True), fmt.width, fmt.height, subject_key, seed, subject_seed)
        with self._lock:
            r = self._renderers.get(key)
        if r is None:
            r = generate.SceneRenderer(scene, fmt.width, fmt.height, self._subject(subject_key, subject_seed), seed)
            with self._lock:
                if len(self._renderers) > 8:
                    self._renderers.clear()
                self._renderers[key] = r
        return r

    def render_range(
        self,
        scene: dict,
        start: int,
        end: int,
        fmt: Format,
        output_key: str,
        *,
        subject_key: str = "",
        seed: int = 0,
        subject_seed: int = 0,
        keep_video: bool = False,
        sample_key: str = "",
        should_stop=None,
        prev_scene: dict | None = None,
        next_scene: dict | None = None,
    ) -> SegmentResult:
        """Generate frames [start, end) of one scene, encode them as one closed-GOP segment, verify it,
        and put it in the store under `output_key` (which names the attempt)."""
        if "render_range" in self.fail_kinds:
            from lookalike.errors import JobError

            raise JobError(f"node {self.node_id} is set to fail render_range jobs (LOOKALIKE_FAIL_JOBS)")
        if not scene["start_frame"] <= start < end <= scene["end_frame"]:
            raise InputError(
                f"range [{start}, {end}) is not inside scene {scene.get('index')} "
                f"[{scene['start_frame']}, {scene['end_frame']})"
            )
        t0 = time.perf_counter()
        if keep_video:
            from lookalike.nodes import media

            frames: Iterable[np.ndarray] = (
                f for _, _, f in media.iter_frames(self.local(sample_key), start, end, size=(fmt.width, fmt.height))
            )
        elif scene.get("provider", "local") not in ("local", "media") and not scene.get("clip_key"):
            from lookalike.nodes import providers

            hub = providers.hub_for(self.provider_settings or providers.ProviderSettings())
            frames = hub.scene_frames(scene, start, end, width=fmt.width, height=fmt.height, fps=float(fmt.fps),
                                      subject_rgba=self._subject(subject_key, subject_seed), seed=seed)
        else:
            # The compositor, or a provider clip generated once for the farm by a generate_scene job (every
            # node conforms the same stored file): either way effects and transitions apply on top.
            renderer = self._source(scene, fmt, subject_key, seed, subject_seed)
            frames = (renderer.frame(i) for i in range(start, end))
            effects = scene.get("effects")
            if effects:
                frames = self._with_effects(scene, effects, renderer, start, end, seed)
            if _crosses(scene, prev_scene, next_scene, start, end):
                frames = self._with_transitions(list(frames), scene, prev_scene, next_scene, start, end, fmt,
                                                subject_key, subject_seed)
        if scene.get("overlays"):
            from lookalike.nodes import overlay

            # An overlay lasts its whole scene unless it says otherwise, so edits that retime the scene keep it.
            shown = [{"start_frame": scene["start_frame"], "end_frame": scene["end_frame"], **o} for o in scene["overlays"]]
            frames = (overlay.draw_overlays(f, shown, start + k) for k, f in enumerate(frames))
        return self.encode(frames, fmt, output_key, expected=end - start, t0=t0, stage="render",
                           should_stop=should_stop)

    def _with_transitions(self, frames: list, scene: dict, prev_scene: dict | None, next_scene: dict | None,
                          start: int, end: int, fmt: Format, subject_key: str, subject_seed: int) -> list:
        """Blend the frames of [start, end) that lie inside a transition with the neighbouring scene.

        The neighbour has no frames past its own boundary, so its edge frame is held (a freeze handle);
        frame i of a transition of n frames is drawn at t = (i + 0.5) / n, as kernels.transitions does."""
        from lookalike.kernels import transitions

        out = list(frames)

        from lookalike.kernels.xp import to_device, to_host

        def blend(kind: str, a, b, t: float):
            a, b = to_device(a, self.xp), to_device(b, self.xp)
            if kind == "fade":  # through black
                return to_host(transitions.fade(a, b, t))
            return to_host(transitions.dissolve(a, b, t))

        tin = scene.get("transition_in") or {}
        a0, b0 = int(tin.get("start_frame", 0)), int(tin.get("end_frame", 0))
        if tin.get("kind") in ("dissolve", "fade") and b0 > a0:
            if prev_scene is None:  # the first scene: in from black
                black = np.zeros_like(out[0])
                held = None
            else:
                r = self._source(prev_scene, fmt, subject_key, int(prev_scene.get("seed", 0)), subject_seed)
                held = r.frame(prev_scene["end_frame"] - 1)
            for i in range(max(start, scene["start_frame"], a0), min(end, b0)):
                t = (i - a0 + 0.5) / (b0 - a0)
                out[i - start] = blend(tin["kind"], black if held is None else held, out[i - start], t)
        nin = (next_scene or {}).get("transition_in") or {}
        a1, b1 = int(nin.get("start_frame", 0)), int(nin.get("end_frame", 0))
        if next_scene and nin.get("kind") in ("dissolve", "fade") and a1 < next_scene["start_frame"]:
            r = self._source(next_scene, fmt, subject_key, int(next_scene.get("seed", 0)), subject_seed)
            held = r.frame(next_scene["start_frame"])
            for i in range(max(start, a1), min(end, scene["end_frame"])):
                t = (i - a1 + 0.5) / (b1 - a1)
                out[i - start] = blend(nin["kind"], out[i - start], held, t)
        return out

    def _with_effects(self, scene: dict, effects: list, renderer, start: int, end: int, seed: int) -> list:
        """The scene's effects over frames [start, end), reading the lead and trail frames that
        temporal effects need from the same renderer, so ranges join without seams."""
        from lookalike.nodes import edit

        spec = edit.plan_effects_spec(effects, seed)
        if spec is None:
            return [renderer.frame(i) for i in range(start, end)]
        pipe = edit.Pipeline.from_spec(spec)
        s0, n = scene["start_frame"], scene["end_frame"] - scene["start_frame"]
        lo, hi = pipe.source_range(start - s0, end - s0, n)
        out = pipe.render({k: renderer.frame(s0 + k) for k in range(lo, hi)}, n, start - s0, end - s0, xp=self.xp)
        FRAMES.labels("effects", self.node_id).inc(len(out))
        return out

    def apply_effects(self, input_key: str, spec: dict, start: int, end: int, fmt: Format, output_key: str) -> SegmentResult:
        """Effects over output frames [start, end) of a stored video (the whole scene or video, so lead and
        trail frames come from it), encoded as one segment."""
        from lookalike.nodes import edit

        frames = edit.effects_range(self.local(input_key), spec, start, end, size=(fmt.width, fmt.height))
        return self.encode(frames, fmt, output_key, expected=end - start, stage="effects")

    def encode(
        self, frames: Iterable[np.ndarray], fmt: Format, output_key: str, *, expected: int | None, t0: float | None = None,
        stage: str = "encode", should_stop=None,
    ) -> SegmentResult:
        from lookalike.nodes import media

        t0 = time.perf_counter() if t0 is None else t0
        tmp = self._scratch(".mp4")
        try:
            n = 0
            with media.SegmentWriter(
                tmp, width=fmt.width, height=fmt.height, fps=fmt.fps, codec=fmt.codec, crf=fmt.crf, preset=fmt.preset
            ) as w:
                for frame in frames:
                    if should_stop is not None and should_stop():
                        from lookalike.errors import CancelledError

                        raise CancelledError(f"stopped after {n} frames: the request was cancelled")
                    w.write(frame)
                    n += 1
            if expected is not None and n != expected:
                from lookalike.errors import JobError

                raise JobError(f"produced {n} frames where {expected} were asked for")
            media.verify_segment(tmp, expected_frames=n, fps=fmt.fps)
            FRAMES.labels(stage, self.node_id).inc(n)
            size, digest = self._put(output_key, tmp, "segment")
        finally:
            os.unlink(tmp)
        return SegmentResult(output_key, n, size, digest, time.perf_counter() - t0)

    def grade(self, input_key: str, grade: dict, fmt: Format, output_key: str) -> SegmentResult:
        """Re-grade a segment toward a target grade (the measured grade of a sample scene)."""
        from lookalike.kernels import grade as kgrade
        from lookalike.nodes import media

        frames = (
            kgrade.match_grade(f, grade) for _, _, f in media.iter_frames(self.local(input_key), size=(fmt.width, fmt.height))
        )
        return self.encode(frames, fmt, output_key, expected=None, stage="grade")

    # -- audio and assembly -------------------------------------------------------------------
    def render_audio(
        self, plan: dict, analysis_doc: dict, output_key: str, *, duration_s: float, seed: int = 0,
        keep_audio: bool = False, sample_key: str = "",
    ) -> dict:
        """The whole timeline's audio, rendered once: a music bed from the plan's music provider (local
        synthesis unless the plan or this node's settings choose another; fallback in the configured
        order) at the sample's tempo and key, following its loudness envelope, sections and sound where
        the plan has them (`arrangement`: nodes.providers.audio.music_track), with the plan's voice
        lines and sound effects mixed over it (or, behind keep_audio, the sample's own track). The mix
        is mastered to the plan's `loudness_target` (`_loudness_target`: -14 LUFS unless the plan says
        "sample" or a level), true peak <= -1 dBTP (4x oversampled, BS.1770 annex 2).

        A footage plan with a music track (`plan["music"]["track"]`) plays that track instead of a
        generated bed, fitted to the timeline and levelled to the same loudness (`_user_music`); with
        `keep_media_audio` the footage scenes' own sound goes under the music, whichever it is
        (`_clip_sound`, `_under_music`). Voice lines and effects mix over either as before."""
        import pyloudnorm
        from lookalike.nodes import media, providers

        rate = 48000
        audio = analysis_doc.get("audio") or {}
        music_done: dict = {}
        if keep_audio and sample_key:
            got = media.read_audio(self.local(sample_key), rate=rate, mono=False)
            if got is None:
                raise InputError("--keep-audio was asked for, but the sample has no audio track")
            from lookalike.kernels import audio_features

            samples = audio_features.downmix_stereo(got[0])  # the output is stereo; a 5.1 sample too
        else:
            # The plan's music (edits change it) over the sample's measured tempo, key and loudness.
            m = plan.get("music") or {}
            target = _loudness_target(m, audio)
            track = m.get("track") or {}
            if track.get("key"):
                # A footage remake with --music: the user's track, not a generated bed (docs/footage.md).
                samples, music_done = _user_music(self.local(track["key"]), track, float(duration_s), rate, target)
            else:
                sections = [s["start_s"] for s in plan.get("scenes", [])[1:] if s.get("start_s") is not None]
                hub = providers.hub_for(self.provider_settings or providers.ProviderSettings())
                request = providers.MusicRequest(
                    duration_s=float(duration_s),
                    out_dir=Path(tempfile.mkdtemp(dir=self.cache_dir)),
                    tempo_bpm=m.get("tempo_bpm") or audio.get("tempo_bpm") or 120.0,
                    key=m.get("key") or audio.get("key"),
                    section_starts_s=tuple(float(t) for t in sections),
                    prompt=str(m.get("prompt") or ""),
                    seed=seed,
                    target_lufs=target,
                    model=str(m.get("model") or ""),
                )
                arrangement = {k: m[k] for k in ("style", "sections", "envelope") if m.get(k)}
                samples, record, conform = providers.music_track(hub, request, rate=rate, provider=m.get("provider"),
                                                                 arrangement=arrangement or None)
                music_done = {**record.to_dict(), "conform": conform}
            if m.get("keep_media_audio"):
                samples = _under_music(samples, _clip_sound(self.local, plan, samples.shape[-1], rate), rate, target)
            lines, events = _voice_and_sfx(plan)
            if lines or events:
                samples = self._mix(samples, lines, events, duration_s, rate, target, seed)
                if not track.get("key") and (m.get("envelope") or {}).get("lufs"):
                    # The sample's envelope is of its whole sound, its own effects and voice included:
                    # the mix follows it, not the bed alone, or an effect is heard twice as loud.
                    from lookalike.nodes import mix, music

                    samples = mix.master(music.follow_envelope(samples, rate, m["envelope"]), rate,
                                         target_lufs=target)
        samples = np.asarray(samples, dtype=np.float32)
        tmp = self._scratch(".m4a")
        try:
            media.write_audio(tmp, samples, rate)
            if not keep_audio:
                samples = _encoded_under_ceiling(tmp, samples, rate, target)
            self._put(output_key, tmp, "audio")
        finally:
            os.unlink(tmp)
        meter = pyloudnorm.Meter(rate)
        lufs = float(meter.integrated_loudness(samples.T if samples.ndim == 2 else samples))
        peak = float(20 * np.log10(max(float(np.max(np.abs(samples))), 1e-9)))
        return {"key": output_key, "lufs": lufs, "peak_db": peak, "duration_s": samples.shape[-1] / rate,
                "music": music_done}

    def _mix(self, music_track, lines, events, duration_s: float, rate: int, target: float, seed: int):
        """Voice lines and sound effects over the music, ducked and mastered once for the timeline."""
        from lookalike.nodes import mix, providers

        hub = providers.hub_for(self.provider_settings or providers.ProviderSettings())
        work = Path(tempfile.mkdtemp(dir=self.cache_dir))
        voice = providers.voice_track(hub, lines, duration_s, rate=rate, out_dir=work, seed=seed)[0] if lines else None
        sfx = providers.sfx_track(hub, events, duration_s, rate=rate, out_dir=work, seed=seed)[0] if events else None
        return mix.mix_timeline(music_track, voice, sfx, rate=rate, target_lufs=target)

    def deliver(self, final_path: str, output_key: str, *, plan: dict, analysis_doc: dict, formats: list[str],
                resolution: str, aspect: str) -> dict[str, str]:
        """The requested size/aspect of final.mp4 (in place), other formats and timeline.otio, stored
        beside `output_key`. Returns {output name: store key}."""
        from lookalike.nodes import formats as fmts
        from lookalike.nodes import timeline

        base = output_key.rsplit(".", 1)[0]
        outputs: dict[str, str] = {}
        h265 = "mp4:h265" in formats
        if resolution not in ("", "source") or aspect or h265:
            tmp = self._scratch(".mp4")
            # An aspect crop follows each scene's subject: the plan's scenes are the final's shots.
            scenes = [(int(sc["start_frame"]), int(sc["end_frame"])) for sc in (plan or {}).get("scenes") or []]
            fmts.export(final_path, tmp, container="mp4", codec="h265" if h265 else "h264",
                        resolution=resolution or None, aspect=aspect or None, scenes=scenes or None)
            os.replace(tmp, final_path)
        for f in formats:
            container, _, codec = f.partition(":")
            if container == "mp4":
                continue
            tmp = self._scratch(f".{container}")
            try:
                fmts.export(final_path, tmp, container=container, codec=codec or "vp9")
                key = f"{base}.final.{container}"
                self._put(key, tmp, "final")
                outputs[f"final.{container}"] = key
            finally:
                os.unlink(tmp)
        if plan:
            tmp = self._scratch(".otio")
            try:
                timeline.write_otio(plan, analysis_doc, "final.mp4", tmp)
                key = f"{base}.timeline.otio"
                self._put(key, tmp, "final")
                outputs["timeline.otio"] = key
            finally:
                os.unlink(tmp)
        return outputs

    def assemble(self, segment_keys: list[str], audio_key: str, output_key: str, expected_frames: int,
                 *, plan: dict | None = None, analysis_doc: dict | None = None, formats: tuple[str, ...] = (),
                 resolution: str = "", aspect: str = "") -> dict:
        from lookalike.nodes import media

        from lookalike.errors import JobError

        paths = [self.local(k) for k in segment_keys]
        audio = self.local(audio_key) if audio_key else None
        tmp = self._scratch(".mp4")
        try:
            info = media.concat_segments(paths, tmp, audio_path=audio)
            if expected_frames and info.n_frames != expected_frames:
                raise JobError(f"assembled {info.n_frames} frames where the plan has {expected_frames}")
            FRAMES.labels("assemble", self.node_id).inc(info.n_frames)
            outputs = self.deliver(tmp, output_key, plan=plan or {}, analysis_doc=analysis_doc or {},
                                   formats=list(formats), resolution=resolution, aspect=aspect)
            size, _ = self._put(output_key, tmp, "final")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return {"key": output_key, "n_frames": info.n_frames, "bytes": size, "info": media_info_dict(info),
                "outputs": outputs}

    def score(self, sample_key: str, output_key: str, analysis_doc: dict, plan: dict,
              output_analysis: dict | None = None) -> dict:
        """similarity.json of the output against the sample. With `output_analysis` (merged from range
        jobs: analyze_range/analyze_audio/merge_analysis on `output_key`) the output is not analysed
        again here; the document is the same either way."""
        from lookalike.nodes import score

        # The user's frame each footage scene starts from, for the report's sample | source | output.
        sources = {int(s["index"]): (self.local(s["source"]["key"]), int(s["source"].get("in_frame") or 0))
                   for s in (plan or {}).get("scenes", []) if (s.get("source") or {}).get("kind") == "media"}
        return score.score(self.local(sample_key), self.local(output_key), analysis_doc, plan,
                           output_analysis=output_analysis, config=self.score_config, sources=sources)


def _crosses(scene: dict, prev_scene: dict | None, next_scene: dict | None, start: int, end: int) -> bool:
    """Whether frames [start, end) of `scene` lie inside a transition into or out of it."""
    tin = scene.get("transition_in") or {}
    if tin.get("kind") in ("dissolve", "fade") and start < int(tin.get("end_frame", 0)):
        return True
    nin = (next_scene or {}).get("transition_in") or {}
    return nin.get("kind") in ("dissolve", "fade") and end > int(nin.get("start_frame", 1 << 30))


# Plan sound names (add_sfx takes any word) onto the effect kinds the providers make; the rest are hits.
_SFX_KINDS = {"whoosh": "whoosh", "swoosh": "whoosh", "riser": "riser", "rise": "riser",
              "click": "click", "tick": "click", "snap": "click", "clap": "click"}


def _voice_and_sfx(plan: dict) -> tuple[list[dict], list[dict]]:
    """The plan's voice lines and sound effects on the timeline (seconds from the start)."""
    lines, events = [], []
    for s in plan.get("scenes", []):
        start = float(s.get("start_s") or 0.0)
        audio = s.get("audio") or {}
        for line in audio.get("voice_lines") or []:
            lines.append({k: v for k, v in {
                "text": line["text"], "start_s": line.get("start_s", start + float(line.get("offset_s") or 0.0)),
                "voice": line.get("voice"), "emotion": line.get("emotion"), "pace": line.get("pace"),
            }.items() if v is not None})
        for fx in audio.get("sfx") or []:
            events.append({"kind": _SFX_KINDS.get(fx.get("sound", ""), "hit"),
                           "at_s": start + float(fx.get("offset_s") or 0.0),
                           "gain": 10 ** (float(fx.get("gain_db") or 0.0) / 20)})
    return lines, events


def media_info_dict(info) -> dict:
    d = {
        "path": os.path.basename(str(info.path)),
        "container": info.container,
        "duration_s": info.duration_s,
        "fps": float(info.fps),
        "fps_num": info.fps.numerator,
        "fps_den": info.fps.denominator,
        "n_frames": info.n_frames,
        "width": info.width,
        "height": info.height,
        "rotation_deg": info.rotation_deg,
        "has_video": info.has_video,
        "has_audio": info.has_audio,
        "video_codec": info.video_codec,
        "variable_frame_rate": info.variable_frame_rate,
    }
    return d


def _video_to_video(scene: dict) -> bool:
    """Does the scene's provider model restyle the sample's footage (rather than start from an image)?"""
    from lookalike.nodes.providers.runway import VIDEO_MODELS

    return scene.get("provider") == "runway" and scene.get("model") in VIDEO_MODELS


class _ClipSource:
    """A conformed provider clip read like a SceneRenderer (`frame(i)`, absolute index), decoding a
    window ahead at a time, since ranges and effect pipelines read frames in order."""

    WINDOW = 48

    def __init__(self, clip) -> None:
        self.clip = clip
        self._cache: dict[int, np.ndarray] = {}

    def frame(self, i: int) -> np.ndarray:
        if i not in self._cache:
            end = min(self.clip.end, i + self.WINDOW)
            self._cache = dict(zip(range(i, end), self.clip.frames(i, end), strict=True))
        return self._cache[i]


# -- the footage remake's sound (docs/footage.md, "Text, music, voice") ------------------------------

CLIP_UNDER_MUSIC_DB = -12.0
"""Where the clips' own sound sits (keep_media_audio), in LU relative to the music: the room, the
crowd and the voices are heard, the track stays in front."""
CLIP_CROSSFADE_S = 0.04
"""Equal-power crossfade of one scene's clip sound into the next, centred on the cut: long enough to
take the click out of a cut mid-waveform, short enough that the cut still sounds like a cut."""
_SILENT_DBFS = -60.0  # a clip's sound (RMS) under this is silence: nothing worth mixing
_BEATS_PER_BAR = 4
_LOOP_CROSSFADE_S = 0.25  # nodes.music.fit_length's default: the seam of a looped track


TRUE_PEAK_CEILING_DB = -1.0
"""The delivered file's true peak, at most: decoded from the AAC, not the float mix before it."""
_ENCODE_ROUNDS = 5


def _encoded_under_ceiling(path: str, samples: np.ndarray, rate: int, target: float) -> np.ndarray:
    """The mix as encoded at `path`, re-limited and re-encoded while the decoded file's true peak is
    over TRUE_PEAK_CEILING_DB: AAC's quantisation noise rides on the limited peaks and overshoots
    them (0.2 dB on Big Buck Bunny's remake, 1.4 dB on a 220 BPM one), so the limiter's ceiling is
    lowered by each round's overshoot. Limiting, not a gain cut: the loudness stays on target."""
    from lookalike.nodes import media, mix, music

    ceiling = TRUE_PEAK_CEILING_DB
    for _ in range(_ENCODE_ROUNDS):
        got = media.read_audio(path, rate=rate, mono=False)
        if got is None:
            break
        over = music.true_peak_db(np.asarray(got[0], dtype=np.float64)) - TRUE_PEAK_CEILING_DB
        if over <= 0.0:
            break
        ceiling -= over + 0.1
        samples = mix.master(samples, rate, target_lufs=target, true_peak_ceiling_db=ceiling)
        media.write_audio(path, samples, rate)
    return samples


LOUDNESS_DEFAULT_LUFS = -14.0
"""The mix's integrated loudness when the plan names none: the streaming norm."""


def _loudness_target(music_entry: dict, audio: dict) -> float:
    """The integrated loudness (LUFS) to master to: the plan's `loudness_target` (a level, or "sample":
    the sample's measured `lufs`), -14 LUFS when it is absent or the sample's level is unknown."""
    want = music_entry.get("loudness_target")
    if want == "sample":
        want = music_entry.get("lufs") if music_entry.get("lufs") is not None else audio.get("lufs")
    try:
        value = float(want) if want is not None else LOUDNESS_DEFAULT_LUFS
    except (TypeError, ValueError):
        raise InputError(f"the plan's loudness target {want!r} is neither 'sample' nor a level in LUFS",
                         hint="set music.loudness_target to e.g. -14 or 'sample'") from None
    return LOUDNESS_DEFAULT_LUFS if not np.isfinite(value) else float(np.clip(value, -40.0, -5.0))


def _user_music(path: str, track: dict, duration_s: float, rate: int, target: float) -> tuple[np.ndarray, dict]:
    """The user's track fitted to the timeline: float32 (2, round(duration_s * rate)) at `target` LUFS,
    and what was done to it (render_audio's `music`).

    The track keeps its own tempo: the plan's boundaries were moved onto its beats instead
    (coordinator.beats). Fitting reuses what conforms a provider's music (nodes.music.fit_length):
    a longer track is cut with a 50 ms fade-out; a shorter one is looped whole bars at a time (whole
    beats when it holds less than a bar), each seam crossfaded, so the pulse runs on across it. Then
    it is mastered as the generated music is (nodes.mix.master: loudness, true peak <= -1 dBTP).
    """
    from lookalike.nodes import media, mix, music
    from lookalike.nodes.providers.audio import measure_tempo

    name = track.get("name") or track["key"]
    got = media.read_audio(path, rate=rate, mono=False)
    x = None if got is None else np.asarray(got[0], dtype=np.float64)
    if x is None or x.shape[-1] == 0 or not np.isfinite(x).all() or not np.abs(x).max() > 0.0:
        raise InputError(f"the music track {name!r} has no sound to play",
                         hint="give --music a file with an audio track that is not silent")
    if x.shape[0] != 2:  # mono centred; anything wider folded down
        x = np.vstack([x.mean(axis=0)] * 2)
    n = int(round(duration_s * rate))
    done: dict = {"from_s": round(x.shape[-1] / rate, 3)}
    bpm = _track_tempo(track) or measure_tempo(x, rate)
    period = None
    if bpm:
        beat = 60.0 / bpm
        room = x.shape[-1] / rate - _LOOP_CROSSFADE_S
        period = beat * _BEATS_PER_BAR if room >= beat * _BEATS_PER_BAR else beat
        done["tempo_bpm"] = round(bpm, 2)
    if x.shape[-1] > n:
        done["fit"] = "cut"
    elif x.shape[-1] < n:
        done.update(fit="loop", loop_period_s=round(period, 4) if period else None)
    x = music.fit_length(x, n, rate, period_s=period, crossfade_s=_LOOP_CROSSFADE_S)
    x = mix.master(x, rate, target_lufs=target)
    done["mastered"] = True
    return x, {"provider": "user", "kind": "music", "track": name, "media_id": track.get("media_id"),
               "conform": done}


def _track_tempo(track: dict) -> float | None:
    """The track's tempo (BPM) as the plan has it: its `tempo_bpm`, else from its beats; None: unknown."""
    bpm = track.get("tempo_bpm")
    if bpm and np.isfinite(bpm) and bpm > 0:
        return float(bpm)
    beats = np.asarray(track.get("beats_s") or [], dtype=np.float64)
    if len(beats) >= 4:
        gap = float(np.median(np.diff(beats)))
        return 60.0 / gap if gap > 0 else None
    return None


def _clip_sound(local, plan: dict, n: int, rate: int) -> np.ndarray | None:
    """The footage scenes' own sound on the timeline: (2, n) float64, or None where none has any.

    Scene k of a media source hears its item from `in_frame / fps` for `n_frames / F * speed` seconds
    (F the output rate), resampled onto the scene's length when speed is not 1 (a slowed clip sounds
    slowed); nothing past `out_frame` (what `extend` fills is a held or replayed picture). Photos,
    generated scenes, items without sound and silent stretches contribute nothing. Each scene's
    sound reaches CLIP_CROSSFADE_S / 2 across its cuts and crossfades there with its neighbour's.
    """
    from lookalike.nodes import media

    fmt = plan.get("format") or {}
    fps_num, fps_den = fmt.get("fps_num"), fmt.get("fps_den")
    out_fps = fps_num / fps_den if fps_num and fps_den else float(fmt.get("fps") or 24.0)
    h = int(round(CLIP_CROSSFADE_S / 2 * rate))
    ramp = np.sin(np.linspace(0.0, 0.5 * np.pi, 2 * h)) if h else np.ones(0)
    out = np.zeros((2, n))
    heard = False
    items: dict[str, np.ndarray | None] = {}
    for s in plan.get("scenes") or []:
        src = s.get("source") or {}
        if src.get("kind") != "media" or src.get("photo") or not src.get("key"):
            continue
        key = src["key"]
        if key not in items:
            got = media.read_audio(local(key), rate=rate, mono=False)
            items[key] = None if got is None else _audible(got[0])
        item = items[key]
        if item is None:
            continue
        fps = float(src.get("fps") or out_fps)
        speed = float(src.get("speed") or 1.0)
        in_frame = int(src.get("in_frame") or 0)
        n_frames = int(s.get("n_frames") or int(s["end_frame"]) - int(s["start_frame"]))
        length = int(round(n_frames / out_fps * rate)) + 2 * h
        stop_s = int(src["out_frame"]) / fps if int(src.get("out_frame") or 0) > in_frame else None
        piece = _item_window(item, rate, in_frame / fps - h / rate * speed, length, speed, stop_s)
        if piece is None:
            continue
        if h:
            piece[:, : 2 * h] *= ramp
            piece[:, -2 * h :] *= ramp[::-1]
        at = int(round(int(s["start_frame"]) / out_fps * rate)) - h
        a, b = max(at, 0), min(at + length, n)
        if b > a:
            out[:, a:b] += piece[:, a - at : b - at]
            heard = True
    return out if heard else None


def _audible(x: np.ndarray) -> np.ndarray | None:
    """A clip's decoded sound as stereo float64, or None when it is empty or silent throughout."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape[-1] == 0 or not np.isfinite(a).all():
        return None
    if a.shape[0] != 2:
        a = np.vstack([a.mean(axis=0)] * 2)
    rms = float(np.sqrt(np.mean(a**2)))
    return a if rms > 10 ** (_SILENT_DBFS / 20) else None


def _item_window(item: np.ndarray, rate: int, from_s: float, length: int, speed: float,
                 stop_s: float | None) -> np.ndarray | None:
    """`length` samples of the timeline hearing `item` from `from_s` (item seconds) at `speed`, silence
    where the item has none (before its start, past its end or `stop_s`); None when all silent."""
    from scipy import signal

    span = max(1, int(round(length * speed)))
    first = int(round(from_s * rate))
    end = item.shape[-1] if stop_s is None else min(item.shape[-1], int(round(stop_s * rate)))
    seg = np.zeros((2, span))
    a, b = max(first, 0), min(first + span, end)
    if b <= a:
        return None
    seg[:, a - first : b - first] = item[:, a:b]
    if float(np.sqrt(np.mean(seg[:, a - first : b - first] ** 2))) <= 10 ** (_SILENT_DBFS / 20):
        return None
    if span != length:
        ratio = Fraction(length, span).limit_denominator(512)
        seg = signal.resample_poly(seg, ratio.numerator, ratio.denominator, axis=-1)
    if seg.shape[-1] < length:
        seg = np.pad(seg, ((0, 0), (0, length - seg.shape[-1])))
    return seg[:, :length]


def _under_music(music_bed: np.ndarray, clips: np.ndarray | None, rate: int, target: float) -> np.ndarray:
    """The music with the clips' sound under it: the clips levelled as one to CLIP_UNDER_MUSIC_DB
    below the music's target (so they keep their loudness relative to each other), the sum mastered
    to the target again. No clip sound: the music unchanged."""
    from lookalike.nodes import mix

    if clips is None:
        return music_bed
    under = mix.master(clips, rate, target_lufs=target + CLIP_UNDER_MUSIC_DB)
    return mix.master(np.asarray(music_bed, dtype=np.float64) + under, rate, target_lufs=target)
