"""From an analysis to a plan: one entry per sample scene, in the plan.json format.

Plain dictionaries in and out (plan.json is docs/plan.md, its footage fields docs/footage.md); no media work happens here.

Sound effects go where the sample has them (`sfx_events`): at an onset of the sample's audio that
is strong, stands alone, and is neither speech nor part of a rhythm:

- strong: at least SFX_MIN_STRENGTH times the median of the onset envelope (a steady click track's
  onsets measure ~3, the effects in Big Buck Bunny's first 30 s 11.7 to 38);
- not speech: outside the speech segments (a word's onset is the voice-over's business, and an
  effect on a word is heard as a glitch); an effect the classifier mistook for speech is missed
  rather than a click put on a word;
- not part of a rhythm: fewer than SFX_RUN_MIN other onsets of at least half its strength within
  +-SFX_RUN_WINDOW_S. A beat has its neighbours (the remake's music supplies its own pulse), so do
  syllables and drum fills; an effect stands alone. A pulse slower than ~55 BPM has too few
  neighbours and reads as separate hits;
- not within SFX_EDGE_S of the start (the onset envelope has no past there), at least
  SFX_MIN_GAP_S from a stronger one, and at most SFX_MAX_PER_MINUTE, the strongest kept.

The time is the onset's measured attack (`attack_s`, nodes.onset_spectrum), else its envelope time.
The kind comes from what arrives there (`centroid_hz`): under SFX_BRIGHT_HZ a low thump, the
`hit`; above, a bright transient, the `click`.

The music entry (`make_plan`'s "music") holds what the remake's music follows:

- `loudness_target`: the integrated loudness of the final mix. Absent or None: -14 LUFS
  (LOUDNESS_DEFAULT_LUFS, the streaming norm); "sample": the sample's measured `lufs`; a number:
  that many LUFS (`parse_loudness` reads the --loudness option). The true peak is always <= -1 dBTP.
- `envelope`: the sample's short-term loudness (3 s windows) every `hop_s`, in LUFS; the music's
  gain follows its shape (nodes.music), whatever the target level.
- `sections`: [{start_s, end_s, role, level_lu}] cut where the sample's loudness changes by
  SECTION_JUMP_LU or more (moved onto a scene boundary within SECTION_SNAP_S), each named from
  its level against the loudest: `intro`, `build` (climbing into a louder one), `drop`, `break`,
  `outro` (`music_sections`).
- `descriptors`: the analysis' (brightness, percussiveness, bass share, onset rate, pulse);
  `style`: the groove and instruments picked from them (`music_style`), and `prompt`: the same in
  words, for a provider that takes text (genre, mood, instruments, tempo, key, structure).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

PLAN_SCHEMA = "lookalike.plan/1"

SFX_MIN_STRENGTH = 6.0
SFX_RUN_WINDOW_S = 2.0
SFX_RUN_MIN = 3
SFX_EDGE_S = 0.1
SFX_SPEECH_MARGIN_S = 0.05  # an onset's envelope time can lead the speech segment it opens
SFX_MIN_GAP_S = 0.25
SFX_MAX_PER_MINUTE = 60
SFX_BRIGHT_HZ = 1500.0

LOUDNESS_DEFAULT_LUFS = -14.0
LOUDNESS_RANGE_LUFS = (-40.0, -5.0)
SECTION_JUMP_LU = 6.0
SECTION_MIN_S = 4.0
SECTION_SNAP_S = 1.5
STEP_LEAD_S = 1.0
_DROP_LU = 3.0  # a section within this of the loudest is a drop


def scene_seed(project_seed: int, index: int) -> int:
    """A seed per scene that does not depend on which node or attempt renders it."""
    digest = hashlib.sha256(f"{project_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def _prompt(scene: dict) -> str:
    motion = scene.get("camera", {}).get("motion", "static").replace("_", " ")
    palette = scene.get("palette") or []
    colours = ", ".join("#{:02x}{:02x}{:02x}".format(*p["rgb"]) for p in palette[:3])
    return f"the subject, {motion} camera, palette {colours}".strip()


def clean_trajectory(traj: list, *, max_step: float = 0.02, spread: float = 6.0) -> list:
    """The measured camera path without its glitches: a frame-to-frame jump far outside the shot's own
    motion (a fade, a flash, a frame the estimator lost) is replaced by the shot's typical step.

    A remake follows the path literally, so a glitch would become a visible jump (and a false cut)."""
    import numpy as np

    t = np.asarray(traj, dtype=float).reshape(-1, 4)
    if len(t) < 3:
        return [[float(v) for v in r] for r in t]
    work = t.copy()
    work[:, 2] = np.log(np.clip(work[:, 2], 1e-3, None))  # zoom as log scale: steps add up
    steps = np.diff(work, axis=0)
    med = np.median(steps, axis=0)
    dev = np.abs(steps - med)
    mad = np.median(dev, axis=0) + 1e-6
    limits = np.array([max_step, max_step, max_step, 2.0])  # x, y (frame fractions), log zoom, degrees
    bad = np.any((dev > spread * mad) & (dev > limits), axis=1)
    if not bad.any():
        return [[float(v) for v in r] for r in t]
    steps[bad] = med
    work = np.vstack([work[:1], work[:1] + np.cumsum(steps, axis=0)])
    work[:, 2] = np.exp(work[:, 2])
    return [[round(float(v), 6) for v in r] for r in work]


def _camera(scene: dict, n: int) -> dict:
    cam = copy.deepcopy(scene.get("camera") or {"motion": "static"})
    cam["trajectory"] = clean_trajectory(cam.get("trajectory") or [[0.0, 0.0, 1.0, 0.0]] * n)
    return cam


def sfx_events(audio: dict[str, Any], duration_s: float | None = None) -> list[dict[str, Any]]:
    """The sample's sound effects, [{"at_s", "kind", "strength"}] in time order (rule: module doc)."""
    onsets = [o for o in audio.get("onsets") or [] if o.get("t_s") is not None]
    speech = [
        (float(g["start_s"]) - SFX_SPEECH_MARGIN_S, float(g["end_s"]))
        for g in audio.get("segments") or []
        if g.get("kind") == "speech"
    ]
    times = [float(o.get("attack_s", o["t_s"])) for o in onsets]
    strengths = [float(o.get("strength") or 0.0) for o in onsets]
    picked: list[dict[str, Any]] = []
    for i, (t, st) in enumerate(zip(times, strengths, strict=True)):
        if st < SFX_MIN_STRENGTH or t < SFX_EDGE_S or (duration_s is not None and t >= duration_s):
            continue
        if any(a <= float(onsets[i]["t_s"]) < b or a <= t < b for a, b in speech):
            continue
        peers = sum(
            1
            for j, (u, su) in enumerate(zip(times, strengths, strict=True))
            if j != i and abs(u - t) <= SFX_RUN_WINDOW_S and su >= 0.5 * st
        )
        if peers >= SFX_RUN_MIN:
            continue
        bright = float(onsets[i].get("centroid_hz") or 0.0) >= SFX_BRIGHT_HZ
        picked.append({"at_s": round(t, 4), "kind": "click" if bright else "hit", "strength": st})
    kept: list[dict[str, Any]] = []
    for ev in sorted(picked, key=lambda e: -e["strength"]):
        if all(abs(ev["at_s"] - k["at_s"]) >= SFX_MIN_GAP_S for k in kept):
            kept.append(ev)
    span = duration_s if duration_s else max((e["at_s"] for e in kept), default=0.0)
    cap = max(1, int(SFX_MAX_PER_MINUTE * span / 60.0 + 0.5))
    return sorted(kept[:cap], key=lambda e: e["at_s"])


def _scene_sfx(events: list[dict[str, Any]], start_s: float, end_s: float) -> list[dict[str, Any]]:
    """The plan entries (like plan_ops.AddSfx's) of the events in [start_s, end_s)."""
    return [
        {
            "sound": e["kind"],
            "offset_s": round(e["at_s"] - start_s, 4),
            "gain_db": 0.0,
            "source": "sample_onset",
        }
        for e in events
        if start_s <= e["at_s"] < end_s
    ]


def make_plan(
    analysis: dict, *, seed: int = 0, provider: str = "local", music_provider: str | None = None,
    loudness: float | str | None = None,
) -> dict:
    """The first plan of a project: every scene keeps the sample's duration, cut, camera and colour;
    sound effects at the sample's (`sfx_events`); music at the sample's tempo and key, following its
    loudness envelope, sections and sound (module doc), from `music_provider` (None: the rendering
    node's configured one, LOOKALIKE_MUSIC_PROVIDER, local unless set). `loudness`: the mix's
    integrated target (`parse_loudness`'s value; None: -14 LUFS)."""
    source = analysis["source"]
    audio = analysis.get("audio") or {}
    fps = float(source["fps"])
    events = sfx_events(audio, source.get("duration_s"))
    scenes = []
    for s in analysis["scenes"]:
        n = s["end_frame"] - s["start_frame"]
        start_s = s["start_s"] if s.get("start_s") is not None else s["start_frame"] / fps
        end_s = s["end_s"] if s.get("end_s") is not None else s["end_frame"] / fps
        scenes.append(
            {
                "index": s["index"],
                # A stable identity that follows the scene through swaps, inserts and deletes
                # (plan_ops.diff and affected_scenes match scenes by it).
                "id": f"s{s['index']}",
                "source_index": s["index"],
                "start_frame": s["start_frame"],
                "end_frame": s["end_frame"],
                "n_frames": n,
                "start_s": s.get("start_s"),
                "end_s": s.get("end_s"),
                "transition_in": copy.deepcopy(s.get("transition_in", {"kind": "cut"})),
                "camera": _camera(s, n),
                "palette": copy.deepcopy(s.get("palette", [])),
                "grade": copy.deepcopy(s.get("grade", {})),
                "prompt": _prompt(s),
                "provider": provider,
                "model": "compositor-1",
                "seed": scene_seed(seed, s["index"]),
                "effects": [],
                "audio": {
                    "music_section": s["index"],
                    "voice_lines": [],
                    "sfx": _scene_sfx(events, float(start_s), float(end_s)),
                },
            }
        )
    return {
        "schema": PLAN_SCHEMA,
        "version": 1,
        "format": {
            "width": source["width"],
            "height": source["height"],
            "fps_num": source.get("fps_num"),
            "fps_den": source.get("fps_den"),
            "fps": source["fps"],
            "n_frames": source["n_frames"],
            "duration_s": source["duration_s"],
        },
        # Like a scene's provider/model: who makes the music (local, elevenlabs; None: the node's
        # setting) and the model ("": the provider's default); fallback in the node's order.
        "music": _music_entry(audio, scenes, source.get("duration_s"), music_provider, loudness),
        "scenes": scenes,
        "next_scene_id": len(scenes),
    }


def parse_loudness(option: str | float | None) -> float | str | None:
    """The --loudness option as the plan holds it: None (the -14 LUFS default), "sample", or LUFS.

    Takes "", "sample", "-16", "-16 LUFS"; a level outside LOUDNESS_RANGE_LUFS raises InputError."""
    from lookalike.errors import InputError

    if option is None or (isinstance(option, str) and not option.strip()):
        return None
    if isinstance(option, str):
        text = option.strip().lower().removesuffix("lufs").strip()
        if text == "sample":
            return "sample"
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--loudness {option!r} is neither 'sample' nor a level in LUFS",
                             hint="write e.g. --loudness -14, --loudness -16 or --loudness sample") from None
    else:
        value = float(option)
    lo, hi = LOUDNESS_RANGE_LUFS
    if not lo <= value <= hi:
        raise InputError(f"--loudness {value:g} LUFS is outside {lo:g} to {hi:g} LUFS",
                         hint="streaming services play at -14 LUFS, broadcast at -23 or -24")
    return value


def _music_entry(audio: dict, scenes: list[dict], duration_s: float | None, provider: str | None,
                 loudness: float | str | None) -> dict:
    out: dict[str, Any] = {
        "tempo_bpm": audio.get("tempo_bpm"),
        "key": audio.get("key"),
        "lufs": audio.get("lufs"),
        "provider": provider,
        "model": "",
    }
    if loudness is not None:
        out["loudness_target"] = loudness
    env = audio.get("loudness_envelope") or {}
    desc = audio.get("descriptors")
    if not env.get("lufs") or not desc:
        return out  # an analysis from before envelopes: the music is the plain groove
    total = float(duration_s or len(env["lufs"]) * float(env["hop_s"]))
    starts = [float(s["start_s"]) for s in scenes[1:] if s.get("start_s") is not None]
    sections = music_sections(env, starts, total)
    style = music_style(desc, audio.get("tempo_bpm"), audio.get("key"))
    out.update(envelope=copy.deepcopy(env), sections=sections, descriptors=dict(desc), style=style,
               prompt=music_prompt(style, sections, audio.get("tempo_bpm"), audio.get("key")))
    return out


def music_sections(envelope: dict, boundaries_s: list[float], duration_s: float) -> list[dict]:
    """The sample's sections from its loudness envelope and scene boundaries (module doc)."""
    hop = float(envelope["hop_s"])
    lufs = [max(-70.0, float(v)) for v in envelope["lufs"]]
    n = len(lufs)
    span = max(1, int(round(2.0 / hop)))  # the level two seconds either side of each point

    def mean(a: int, b: int) -> float:
        part = lufs[max(0, a) : min(n, b)]
        return sum(part) / len(part) if part else -70.0

    jumps = [(mean(i, i + span) - mean(i - span, i), i) for i in range(1, n)]
    cuts: list[float] = []
    for jump, i in sorted(jumps, key=lambda j: -abs(j[0])):
        if abs(jump) < SECTION_JUMP_LU:
            break
        # A 3 s window hears a loud stretch from the moment its edge reaches it: the curve rises about
        # a second before the sound does and falls about a second after (measured on steps of 10 to
        # 30 LU), so the section starts that far after a rise's midpoint, before a fall's.
        t = (i - 0.5) * hop + (STEP_LEAD_S if jump > 0 else -STEP_LEAD_S)
        near = [b for b in boundaries_s if abs(b - t) <= SECTION_SNAP_S]
        t = min(near, key=lambda b: abs(b - t)) if near else t
        if SECTION_MIN_S <= t <= duration_s - SECTION_MIN_S and all(abs(t - c) >= SECTION_MIN_S for c in cuts):
            cuts.append(t)
    edges = [0.0, *sorted(cuts), float(duration_s)]
    levels = [mean(int(round(a / hop)), max(int(round(a / hop)) + 1, int(round(b / hop))))
              for a, b in zip(edges[:-1], edges[1:], strict=True)]
    peak = max(levels)
    out = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        rel = levels[k] - peak
        if rel >= -_DROP_LU:
            role = "drop"
        elif k == 0:
            role = "intro"
        elif k == len(levels) - 1:
            role = "outro"
        elif levels[k + 1] - levels[k] >= _DROP_LU and _rises(lufs, a / hop, b / hop, span):
            role = "build"
        else:
            role = "break"
        out.append({"start_s": round(a, 3), "end_s": round(b, 3), "role": role, "level_lu": round(rel, 2)})
    return out


def _rises(lufs: list[float], a: float, b: float, span: int) -> bool:
    """Whether the envelope climbs across [a, b) (points): its last `span` points _DROP_LU over its first."""
    i, j = int(round(a)), max(int(round(a)) + 1, int(round(b)))
    head, tail = lufs[i : min(j, i + span)], lufs[max(i, j - span) : j]
    return bool(head and tail) and sum(tail) / len(tail) - sum(head) / len(head) >= _DROP_LU


def music_style(descriptors: dict, tempo_bpm: float | None, key: str | None) -> dict:
    """The groove and instruments the sample's descriptors call for (module doc).

    groove: "ambient" (hardly any hits, under 0.5 onsets a second: pads and a soft pulse, no kick),
    "half_time" (sparse hits or under 95 BPM: kick on 1, snare on 3), "four_on_floor" (>= 115 BPM
    and percussive), else "breakbeat" (syncopated kick); bass: "sub" (a sine, where the sample's energy sits in the bass), "saw"
    (bright samples) or "round"; lead: "arp" (sixteenth-note plucks) for bright or busy samples,
    "bell" for sparse bright ones, else none; hats per beat from the onset rate; the pad's filter
    opens with the sample's brightness."""
    perc = float(descriptors.get("percussiveness") or 0.0)
    centroid = float(descriptors.get("centroid_hz") or 0.0)
    bass = float(descriptors.get("bass_share") or 0.0)
    onsets = float(descriptors.get("onset_rate_per_s") or 0.0)
    tempo = float(tempo_bpm or 120.0)
    if onsets < 0.5 or (perc < 0.2 and onsets < 1.0):
        groove = "ambient"
    elif onsets < 2.0 or tempo < 95.0:
        groove = "half_time"
    elif tempo >= 115.0 and perc >= 0.3:
        groove = "four_on_floor"
    else:
        groove = "breakbeat"
    return {
        "groove": groove,
        "bass": "sub" if bass >= 0.45 else "saw" if centroid >= 2000.0 else "round",
        "lead": "arp" if centroid >= 2200.0 or onsets >= 3.0 else "bell" if centroid >= 1200.0 else "none",
        "hats_per_beat": 4 if onsets >= 6.0 else 2 if onsets >= 2.0 or perc >= 0.3 else 1,
        "pad_cutoff_hz": round(min(6000.0, max(500.0, 1.2 * centroid)), 1),
        "minor": bool(key and ("m" in key.split()[-1].lower() and "maj" not in key.lower())),
    }


_GENRES = {"ambient": "ambient", "four_on_floor": "house", "half_time": "cinematic downtempo",
           "breakbeat": "breakbeat"}


def music_prompt(style: dict, sections: list[dict], tempo_bpm: float | None, key: str | None) -> str:
    """The style and structure in words, for a music provider that takes a text prompt."""
    mood = "melancholic" if style.get("minor") else "bright"
    parts = [f"{_GENRES.get(style['groove'], style['groove'])}, {mood}"]
    instruments = {"sub": "deep sub bass", "saw": "gritty saw bass", "round": "warm bass"}[style["bass"]]
    lead = {"arp": ", plucked arpeggios", "bell": ", soft bells", "none": ""}[style["lead"]]
    parts.append(f"{instruments}, pads{lead}" + (", no drums" if style["groove"] == "ambient" else ""))
    if tempo_bpm:
        parts.append(f"{float(tempo_bpm):.0f} BPM" + (f" in {key}" if key else ""))
    words = {"intro": "intro", "build": "build-up", "drop": "full drop", "break": "breakdown", "outro": "quiet outro"}
    if sections:
        parts.append("structure: " + ", then ".join(
            f"{words.get(s['role'], s['role'])} {s['start_s']:.0f}-{s['end_s']:.0f} s" for s in sections))
    return "; ".join(parts)


def range_jobs(plan: dict, chunk_frames: int, max_attempts: int) -> list[dict]:
    """Frame-range jobs, scene-aligned: no range crosses a scene boundary."""
    jobs = []
    for s in plan["scenes"]:
        start = s["start_frame"]
        while start < s["end_frame"]:
            end = min(start + chunk_frames, s["end_frame"])
            # Avoid a tiny tail range: fold it into the previous chunk's neighbour.
            if 0 < s["end_frame"] - end < chunk_frames // 4:
                end = s["end_frame"]
            jobs.append(
                {
                    "kind": "render_range",
                    "scene_index": s["index"],
                    "start_frame": start,
                    "end_frame": end,
                    "spec": {},
                    "max_attempts": max_attempts,
                }
            )
            start = end
    return jobs


def analysis_ranges(n_frames: int, n_parts: int, min_frames: int = 120) -> list[tuple[int, int]]:
    """Split [0, n_frames) into at most n_parts ranges of at least min_frames each."""
    parts = max(1, min(n_parts, n_frames // max(1, min_frames)))
    bounds = [round(i * n_frames / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


# -- the footage remake (docs/footage.md) --------------------------------------------------------------

SCRIPT_MAX_LINES = 200
WORDS_PER_S = 2.5  # conversational English, about 150 words a minute
PACE_RANGE = (0.8, 1.6)  # faster than this is hard to follow, slower sounds wrong


def footage_plan(
    plan: dict,
    analysis: dict,
    media: list[dict],
    *,
    text: tuple[str, ...] | list[str] = (),
    script: str = "",
    music: dict | None = None,
    keep_media_audio: bool = False,
    skipped: tuple[dict, ...] | list[dict] = (),
) -> dict:
    """The first plan of a footage remake: `plan` (make_plan's) with every scene's `source` chosen from
    the user's `media` (coordinator.footage.match), the user's text lines in the sample's text boxes,
    the script's lines where the sample speaks, and the user's music with the cuts moved onto its
    beats when the sample cuts on beats. The input plan is not changed."""
    from lookalike.coordinator import beats, footage

    out = copy.deepcopy(plan)
    out["media"] = [{k: v for k, v in m.items() if k != "analysis"} for m in media]
    out["media_skipped"] = list(skipped)
    out["text"] = list(text)
    out["music"]["keep_media_audio"] = bool(keep_media_audio)
    out["boundary_shifts"] = []
    if music is not None:
        out["music"]["track"] = {k: music.get(k) for k in ("key", "name", "media_id", "tempo_bpm", "beats_s",
                                                           "duration_s")}
        out["music"]["tempo_bpm"] = music.get("tempo_bpm") or out["music"].get("tempo_bpm")
        ratio = (analysis.get("pacing") or {}).get("cuts_on_beat_ratio")
        out, out["boundary_shifts"] = beats.snap_to_beats(out, list(music.get("beats_s") or []),
                                                          sample_cuts_on_beat=ratio)
    # The matcher sees the scenes as the plan times them (after any move onto the beats).
    by_index = {s["index"]: s for s in analysis["scenes"]}
    timed = dict(analysis, scenes=[
        dict(by_index[s["source_index"]], index=s["index"], start_frame=s["start_frame"], end_frame=s["end_frame"],
             camera=s["camera"])
        for s in out["scenes"]])
    sources = footage.match(timed, media, output_fps=float(out["format"]["fps"]))
    shots = {(m["media_id"], int(sc.get("index", k))): sc for m in media
             for k, sc in enumerate((m.get("analysis") or {}).get("scenes") or [])}
    for s, src, a in zip(out["scenes"], sources, timed["scenes"], strict=True):
        s["source"] = src
        if src.get("kind") == "media":
            s["provider"], s["model"] = "media", ""
            grain = _grain_effect(a, shots.get((src["media_id"], int(src.get("shot") or 0))), int(out["format"]["width"]))
            if grain is not None:
                s["effects"] = sorted([*s.get("effects", []), grain], key=lambda e: e["name"])
        else:
            s["prompt"] = footage.describe_scene(a)
    _place_text(out, timed["scenes"], list(text))
    _place_script(out, analysis, script)
    return out


# Grain: the analysis measures noise (texture.grain) at its own size, about 256 px on the long side,
# where grain added at the output's full size reads GRAIN_SEEN x (256 / width) of its sigma (measured:
# sigma 0.04 and 0.08 added to a 1280x720 clip read as 0.0076 and 0.0126 over its own 0.0064).
GRAIN_SEEN = 0.85
GRAIN_MARGIN = 1.15  # the sample must be this much grainier than the footage before grain is added
FILM_GRAIN_SIGMA = 0.08  # nodes.edit's film_grain: sigma at strength 1


def _grain_effect(sample_scene: dict, shot: dict | None, width: int) -> dict | None:
    """A film_grain effect that brings the footage's measured grain up to the sample scene's, or None
    when the footage is already as grainy (grain is never taken away)."""
    want = float((sample_scene.get("texture") or {}).get("grain") or 0.0)
    have = float(((shot or {}).get("texture") or {}).get("grain") or 0.0)
    if shot is None or want <= GRAIN_MARGIN * have or width <= 0:
        return None
    sigma = (want * want - have * have) ** 0.5 / (GRAIN_SEEN * 256.0 / max(width, 256))
    strength = min(1.0, sigma / FILM_GRAIN_SIGMA)
    if strength < 0.05:
        return None
    return {"name": "film_grain", "strength": round(strength, 3), "source": "sample_grain"}


def _place_text(plan: dict, scenes: list[dict], lines: list[str]) -> None:
    """The sample's on-screen text boxes, in order of appearance, filled with the user's lines; boxes
    past the last line stay empty (the sample's own words are never copied)."""
    queue = list(lines)
    for s, a in zip(plan["scenes"], scenes, strict=True):
        overlays = []
        for t in sorted(a.get("text") or [], key=lambda t: (t["box"][1], t["box"][0])):
            if not queue:
                break
            overlays.append({"text": queue.pop(0), "box": [float(v) for v in t["box"]],
                             "colour": list(t.get("colour") or [255, 255, 255])})
        s["overlays"] = overlays
    if queue and lines:
        # More lines than the sample shows text: the rest go lower-third on the scenes without text.
        free = [s for s in plan["scenes"] if not s["overlays"]]
        for s in free:
            if not queue:
                break
            s["overlays"] = [{"text": queue.pop(0), "box": [0.1, 0.78, 0.8, 0.1], "colour": [255, 255, 255]}]
    plan["text_unplaced"] = queue


def _script_lines(script: str) -> list[str]:
    """The script's lines: one per non-empty line, long lines split at sentence ends."""
    import re

    out = []
    for line in script.splitlines():
        line = " ".join(line.split())
        if line:
            out += [p for p in re.split(r"(?<=[.!?])\s+", line) if p]
    return out[:SCRIPT_MAX_LINES]


def _place_script(plan: dict, analysis: dict, script: str) -> None:
    """The script's lines as voice lines where the sample speaks (its speech segments, in order); a
    sample without speech gets them at the scene starts. Lines past the last slot join the last one."""
    lines = _script_lines(script)
    if not lines:
        return
    speech = [(float(g["start_s"]), float(g["end_s"])) for g in (analysis.get("audio") or {}).get("segments") or []
              if g.get("kind") == "speech"]
    fps = float(plan["format"]["fps"])
    slots = speech or [(s["start_frame"] / fps, s["end_frame"] / fps) for s in plan["scenes"]]
    if len(lines) > len(slots):
        lines = [*lines[: len(slots) - 1], " ".join(lines[len(slots) - 1 :])]
    for line, (t0, t1) in zip(lines, slots, strict=False):
        scene = next((s for s in plan["scenes"] if s["start_frame"] / fps <= t0 < s["end_frame"] / fps),
                     plan["scenes"][-1])
        offset = max(0.0, t0 - scene["start_frame"] / fps)
        # Paced to fit the sample's slot: a speaker says about WORDS_PER_S at pace 1.
        pace = len(line.split()) / (WORDS_PER_S * max(t1 - t0, 0.3))
        scene["audio"].setdefault("voice_lines", []).append(
            {"text": line, "offset_s": round(offset, 3), "voice": None, "emotion": None,
             "pace": round(float(min(max(pace, PACE_RANGE[0]), PACE_RANGE[1])), 3), "slot_s": round(t1 - t0, 3),
             "source": "script"})
