"""Scoring with the output analysed by frame range (as a farm does it: score_range jobs, score_audio,
score_merge, then Score) gives the same similarity document as `score()` analysing it in one process."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import score_media as sm  # noqa: E402
from lookalike.nodes import analysis  # noqa: E402
from lookalike.nodes.score import ScoreConfig, score  # noqa: E402
from shot_media import make_named  # noqa: E402

from lookalike.errors import InputError  # noqa: E402


def _with_music(src: Path, dst: Path) -> Path:
    """`src`'s video packets unchanged, muxed with score_media's music track."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        n = vin.frames
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=sm.RATE)
        aout.layout = "stereo"
        for pkt in inp.demux(vin):
            if pkt.dts is None:
                continue
            pkt.stream = vout
            out.mux(pkt)
        audio = sm.soundtrack(n / sm.FPS, sm.SAMPLE)
        for i in range(0, audio.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, i : i + 1024]), format="fltp", layout="stereo"
            )
            fr.sample_rate, fr.pts, fr.time_base = sm.RATE, i, Fraction(1, sm.RATE)
            out.mux(aout.encode(fr))
        out.mux(aout.encode(None))
    return dst


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The score_media sample (3 shots, cuts, music) and an output of shot_media's "synth-mixed" clip
    (cut at 34, a 16-frame dissolve at 58-74, a fade through white, a cut, a short dissolve) with music."""
    d = tmp_path_factory.mktemp("score-ranges")
    sample = sm.make(d / "sample.mp4")
    output = _with_music(make_named("synth-mixed", d).path, d / "output.mp4")
    sample_doc = analysis.analyze(str(sample))
    # The single-process document: score() analyses the output itself.
    whole = score(str(sample), str(output), sample_doc, None, config=ScoreConfig())
    return sample, output, sample_doc, whole


def test_output_analysed_by_range_gives_the_same_similarity(pair):
    sample, output, sample_doc, whole = pair
    path = str(output)
    # One-frame ranges right before the cut at 34 and inside the dissolve (58-74), one across a fade.
    bounds = [0, 33, 34, 61, 62, 67, 150, analysis._probe(path).n_frames]
    # As the farm does it: each range on its own (any node, any order), sent as JSON.
    parts = [analysis.analyze_range(path, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    parts = [json.loads(json.dumps(p)) for p in reversed(parts)]
    audio = json.loads(json.dumps(analysis.analyze_audio(path, transcriber=None)))
    merged = json.loads(json.dumps(analysis.merge_ranges(path, parts, audio)))
    kinds = {s["transition_in"]["kind"] for s in merged["scenes"]}
    assert {"cut", "dissolve"} <= kinds, kinds
    split = score(str(sample), path, sample_doc, None, output_analysis=merged, config=ScoreConfig())
    assert split == whole
    # Not a vacuous equality: keyframe, audio and pacing measures are all there.
    assert whole["metrics"]["ssim_mean"] is not None and whole["audio"] is not None
    assert whole["figures"]["scenes"][0]["thumbs"]["output"]


def test_an_analysis_of_another_video_is_refused(pair):
    sample, output, sample_doc, _ = pair
    with pytest.raises(InputError, match="covers 116 frames"):
        score(str(sample), str(output), sample_doc, None, output_analysis=sample_doc)


def test_footage_scenes_get_the_users_frame_as_a_source_thumbnail(pair):
    """report.html's sample | source | output: the source picture is the item's frame at the in-point."""
    from lookalike.nodes import media

    sample, output, sample_doc, whole = pair
    doc = score(str(sample), str(output), sample_doc, None, config=ScoreConfig(), sources={0: (str(output), 5)})
    thumbs = doc["figures"]["scenes"][0]["thumbs"]
    assert thumbs["source"][0].startswith("data:image/png;base64,")
    assert "source" not in doc["figures"]["scenes"][1]["thumbs"]
    # The picture really is that frame: decoded, it matches frame 5 of the item scaled like the others.
    import base64

    import cv2

    png = base64.b64decode(thumbs["source"][0].split(",", 1)[1])
    got = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    frame = next(media.iter_frames(str(output), 5, 6))[2]
    want = cv2.resize(frame, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
    assert float(np.abs(got.astype(int) - want.astype(int)).mean()) < 2.0
    without = lambda d: {k: v for k, v in d.items() if k != "figures"}  # noqa: E731
    assert without(doc) == without(whole)  # the figures are the only difference
