"""Footage scenes (nodes/footage.py): time mapping, in-betweens, extend, mirror, synthesized moves,
reframing, colour matching, VFR, 10-bit/HDR, photos and broken files.

Real media from ../shared/media (read in place); synthetic clips with known truth are written to
tmp_path: a bar moving a known distance per frame, a grey-ish texture, flat 10-bit and HDR frames.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from lookalike.kernels import features as kf
from lookalike.kernels import look
from lookalike.nodes import footage, media
from lookalike.nodes.footage import FootageSource, item_positions
from PIL import Image
from synth import psnr, texture

from lookalike.errors import InputError

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
TESTVIDEO = MEDIA / "shots" / "testvideo.mp4"
VFR = MEDIA / "shots" / "goldeneye-vfr-drop3.mp4"
PHOTO = MEDIA / "footage" / "photos" / "skimage_coffee.png"
BAR_W, BAR_H, BAR_STEP, BAR_WIDTH = 160, 90, 6, 20


def scene_for(start: int, end: int, **source) -> dict:
    src = {
        "kind": "media",
        "in_frame": 0,
        "out_frame": 1,
        "fps": 24.0,
        "speed": 1.0,
        "extend": "none",
        "mirror": False,
        "move": "none",
        "focus": [0.5, 0.5],
    }
    src.update(source)
    return {"index": 0, "start_frame": start, "end_frame": end, "source": src}


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    fps: int = 24,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    trc: int | None = None,
) -> Path:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        vs.options = {"preset": "ultrafast", "crf": "12"}
        if codec == "libx265":
            vs.options = {"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"}
        if trc is not None:
            cc = vs.codec_context
            cc.color_trc, cc.color_primaries, cc.colorspace = trc, 9, 9
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    return path


def bar_frame(x: float) -> np.ndarray:
    a = np.full((BAR_H, BAR_W, 3), 40, np.uint8)
    a[20:70, int(round(x)) : int(round(x)) + BAR_WIDTH] = 230
    return a


@pytest.fixture(scope="module")
def bar_clip(tmp_path_factory) -> Path:
    """24 frames at 24 fps: a bright bar on grey moving BAR_STEP px right per frame, from x = 10."""
    return write_clip(
        tmp_path_factory.mktemp("bar") / "bar.mp4", [bar_frame(10 + BAR_STEP * i) for i in range(24)]
    )


def bar_x(frame: np.ndarray) -> float:
    """Left edge of the bar: the centroid of the bright columns minus half the bar's width."""
    col = frame[30:60, :, 1].astype(float).mean(axis=0)
    bright = col > 135
    return float(np.nonzero(bright)[0].mean()) - (BAR_WIDTH - 1) / 2


def render(src: FootageSource, a: int | None = None, b: int | None = None) -> list[np.ndarray]:
    return [src.frame(i) for i in range(src.start if a is None else a, src.end if b is None else b)]


# ---------------------------------------------------------------- reassembly: the sample's own shot


@pytest.fixture(scope="module")
def testvideo_analysis() -> dict:
    """testvideo.mp4 (1280x720, 29.97 fps, 720 frames, 5 shots) through the project's own analysis."""
    from lookalike.nodes import analysis

    return analysis.analyze(str(TESTVIDEO), transcribe=False)


@pytest.mark.slow
def test_reassembly_of_the_samples_own_shots_is_identical(testvideo_analysis, tmp_path) -> None:
    info = media.probe(TESTVIDEO)
    fps = float(info.fps)
    figures = []
    for sc in testvideo_analysis["scenes"][2::2]:  # the two whose colour is hardest to measure
        a, b = sc["start_frame"], sc["end_frame"]
        scene = {**sc, "source": scene_for(a, b, in_frame=a, out_frame=b, fps=fps)["source"]}
        src = FootageSource(TESTVIDEO, scene, info.width, info.height, fps=fps)
        got = render(src, a, a + 40)
        want = [f for _, _, f in media.iter_frames(str(TESTVIDEO), a, a + 40)]
        figures.append(min(psnr(g, w) for g, w in zip(got, want, strict=True)))
        # After the H.264 encode the project's reassembly test makes: still well above its 35 dB.
        seg = tmp_path / f"s{a}.mp4"
        with media.SegmentWriter(seg, width=info.width, height=info.height, fps=info.fps) as wr:
            for g in got:
                wr.write(g)
        enc = [f for _, _, f in media.iter_frames(str(seg))]
        assert min(psnr(e, w) for e, w in zip(enc, want, strict=True)) > 35
    assert min(figures) > 40, figures


def test_speed_one_at_equal_fps_is_the_identity_mapping() -> None:
    times = [i / 30 for i in range(100)]
    taps = item_positions(times, 10, 60, 50, speed=1.0, out_fps=30.0, extend="none")
    assert taps == [(10 + k, 10 + k, 0.0) for k in range(50)]


# ---------------------------------------------------------------- time: sub-ranges, slow motion, extend


def test_any_sub_range_equals_the_whole_scene_render(bar_clip) -> None:
    scene = scene_for(
        100, 140, in_frame=2, out_frame=20, speed=0.5, extend="pingpong", move="synth", focus=[0.4, 0.5]
    )
    scene["camera"] = {"trajectory": [[0.004 * k, 0.0, 1.0 + 0.01 * k, 0.2 * k] for k in range(40)]}
    scene["grade"] = {"lut": {"lab_mean": [55.0, 6.0, 12.0], "lab_std": [22.0, 6.0, 8.0]}}
    whole = render(FootageSource(bar_clip, scene, 128, 72, fps=24))
    for a, b in ((100, 103), (117, 131), (139, 140)):
        part = render(FootageSource(bar_clip, scene, 128, 72, fps=24), a, b)
        for g, w in zip(part, whole[a - 100 : b - 100], strict=True):
            np.testing.assert_array_equal(g, w)


def test_half_speed_makes_motion_compensated_inbetweens(bar_clip) -> None:
    src = FootageSource(bar_clip, scene_for(0, 16, in_frame=3, out_frame=20, speed=0.5), BAR_W, BAR_H, fps=24)
    out = render(src)
    decoded = {i: f for i, _, f in media.iter_frames(str(bar_clip), 3, 12)}
    for k, frame in enumerate(out):
        if k % 2 == 0:  # an exact item frame: as decoded
            np.testing.assert_array_equal(frame, decoded[3 + k // 2])
        else:  # halfway between item frames 3 + k // 2 and the next: the bar halfway, one bar
            want = 10 + BAR_STEP * (3 + k // 2 + 0.5)
            assert abs(bar_x(frame) - want) < 1.0, (k, bar_x(frame), want)
            col = frame[30:60, :, 1].astype(float).mean(axis=0)
            assert (col > 135).sum() >= BAR_WIDTH - 2  # not two ghosts of half brightness


@pytest.mark.parametrize("extend", ["hold", "pingpong"])
def test_extend_past_out_frame(bar_clip, extend) -> None:
    src = FootageSource(
        bar_clip, scene_for(0, 12, in_frame=4, out_frame=10, extend=extend), BAR_W, BAR_H, fps=24
    )
    decoded = {i: f for i, _, f in media.iter_frames(str(bar_clip), 4, 10)}
    shown = [4, 5, 6, 7, 8, 9] + ([9] * 6 if extend == "hold" else [8, 7, 6, 5, 4, 5])
    for frame, i in zip(render(src), shown, strict=True):
        np.testing.assert_array_equal(frame, decoded[i])


def test_mirror_flips_left_right(bar_clip) -> None:
    plain = render(FootageSource(bar_clip, scene_for(0, 4, in_frame=0, out_frame=4), BAR_W, BAR_H, fps=24))
    flipped = render(
        FootageSource(bar_clip, scene_for(0, 4, in_frame=0, out_frame=4, mirror=True), BAR_W, BAR_H, fps=24)
    )
    for p, f in zip(plain, flipped, strict=True):
        np.testing.assert_array_equal(f, p[:, ::-1])


def test_vfr_clip_maps_by_time() -> None:
    """goldeneye-vfr-drop3.mp4: every other frame lasts two 1/24 s ticks (a drop), 160 frames."""
    info = media.probe(VFR)
    src = FootageSource(VFR, scene_for(0, 30, in_frame=10, out_frame=60), info.width, info.height, fps=24)
    t = info.frame_times
    want = [max(j for j in range(len(t)) if t[j] <= t[10] + k / 24 + 1e-6) for k in range(30)]
    assert want != list(range(10, 40))  # by index would be wrong
    assert [a for a, _, _ in src.taps] == want
    decoded = {i: f for i, _, f in media.iter_frames(str(VFR), 10, max(want) + 1)}
    for k, frame in enumerate(render(src)):
        np.testing.assert_array_equal(frame, decoded[want[k]])


# ---------------------------------------------------------------- moves and reframing


def measured_trajectory(frames: list[np.ndarray]) -> list[list[float]]:
    greys = [kf.luma(kf.to_float(f)) for f in frames]
    deltas = [[0.0, 0.0, 0.0, 0.0]] + [
        kf.estimate_motion(a, b) for a, b in zip(greys, greys[1:], strict=False)
    ]
    return kf.accumulate_trajectory(deltas, frames[0].shape[1] / frames[0].shape[0])


@pytest.mark.parametrize(
    ("label", "pose"),
    [
        ("pan_right", lambda k: [0.012 * k, 0.0, 1.0, 0.0]),
        ("zoom_in", lambda k: [0.0, 0.0, 1.0 + 0.02 * k, 0.0]),
    ],
    ids=["pan_right", "zoom_in"],
)
def test_photo_with_synth_move_follows_the_samples_camera(label, pose) -> None:
    n = 25
    scene = scene_for(0, n, in_frame=0, out_frame=1, photo=True, move="synth", extend="hold")
    scene["camera"] = {"trajectory": [pose(k) for k in range(n)]}
    frames = render(FootageSource(PHOTO, scene, 256, 144, fps=24))
    traj = measured_trajectory(frames)
    got, speed = kf.classify_camera(traj, n / 24)
    assert got == label
    want = pose(n - 1)
    if label == "pan_right":
        assert traj[-1][0] == pytest.approx(want[0], rel=0.15)
    else:
        assert traj[-1][2] == pytest.approx(want[2], rel=0.05)


def test_vertical_4k_clip_covers_16_9_around_its_focus(tmp_path) -> None:
    """A 1080x1920 portrait clip with a red square near its top, framed into 320x180."""
    img = np.full((1920, 1080, 3), 90, np.uint8)
    img[250:450, 440:640] = (220, 30, 30)  # centre (540, 350): (0.5, 0.18)
    clip = write_clip(tmp_path / "tall.mp4", [img, img])

    def red(frame: np.ndarray) -> float:
        return float(((frame[..., 0] > 150) & (frame[..., 1] < 90)).mean())

    centred = FootageSource(clip, scene_for(0, 2, out_frame=2), 320, 180, fps=24).frame(0)
    focused = FootageSource(clip, scene_for(0, 2, out_frame=2, focus=[0.5, 0.18]), 320, 180, fps=24).frame(0)
    edge = FootageSource(clip, scene_for(0, 2, out_frame=2, focus=[0.5, 0.0]), 320, 180, fps=24).frame(0)
    assert centred.shape == focused.shape == (180, 320, 3)
    assert red(centred) == 0.0
    assert red(focused) > 0.055  # the whole square (59 px of 320x180: 6 %) is in frame
    ys, xs = np.nonzero((focused[..., 0] > 150) & (focused[..., 1] < 90))
    assert abs(ys.mean() - 90) < 6 and abs(xs.mean() - 160) < 4  # centred on the focus
    assert red(edge) > 0.055 and not (edge[0] == 0).all()  # clamped to the top, never off the picture


# ---------------------------------------------------------------- colour


def lab_stats(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros(kf.COLOR_LEVELS**3)
    for f in frames:
        c = kf.frame_colour_stats(kf.to_float(f))["colours"]
        counts[np.asarray(c["bins"])] += c["counts"]
    bins = np.nonzero(counts)[0]
    mean, std = look.lab_moments(bins, counts[bins])
    return np.asarray(mean), np.asarray(std)


def test_colour_transfer_reaches_the_scenes_lab_statistics(tmp_path) -> None:
    # Grey-ish: a dull texture with a faint colour wash across it (a clip with no chroma at all
    # cannot be given the target's spread: the transfer caps the std ratio at 4).
    wash = [texture(50 + i, 96, 160, (255, 255, 255)).astype(np.float32) / 255 - 0.5 for i in range(6)]
    grey = [
        np.clip(texture(7 + i, 96, 160, (150, 145, 140)) + w * np.float32([24, -8, -24]), 0, 255).astype(
            np.uint8
        )
        for i, w in enumerate(wash)
    ]
    clip = write_clip(tmp_path / "grey.mp4", grey)
    target_mean, target_std = [58.0, 8.0, 18.0], [16.0, 7.0, 9.0]
    scene = scene_for(0, 6, out_frame=6)
    scene["grade"] = {"lut": {"lab_mean": target_mean, "lab_std": target_std}}
    before = lab_stats([f for _, _, f in media.iter_frames(str(clip))])
    after = lab_stats(render(FootageSource(clip, scene, 160, 96, fps=24)))
    assert np.abs(before[0] - target_mean).max() > 10
    np.testing.assert_allclose(after[0], target_mean, atol=1.5)
    np.testing.assert_allclose(after[1], target_std, rtol=0.15)


def test_palette_lands_near_the_sample_scenes_palette(monkeypatch) -> None:
    """Real footage (the runners' track, red and green) for a scene measured on another real clip
    (the flower's time-lapse): the mean/std transfer alone leaves the palette far off; with the
    palette transfer the rendered frames' palette is within the score's 6 ΔE2000 of the scene's."""
    from lookalike.nodes import analysis

    flower = analysis.analyze(str(MEDIA / "footage" / "clips" / "mdn_flower.mp4"), transcribe=False)["scenes"][0]
    runners = MEDIA / "footage" / "clips" / "openmpf_runners.mp4"
    scene = scene_for(0, 48, out_frame=48, fps=30000 / 1001)
    scene["grade"], scene["palette"] = flower["grade"], flower["palette"]

    def gap() -> float:
        frames = render(FootageSource(runners, scene, 320, 180, fps=30000 / 1001))[::6]
        pixels = np.concatenate([kf.to_float(f).reshape(-1, 1, 3) for f in frames])
        return footage._palette_gap(footage._palette_of(pixels), scene["palette"])

    with_palette = gap()
    monkeypatch.setattr(footage, "PALETTE_ROUNDS", 0)
    mean_std_only = gap()
    assert with_palette <= 6.0 < mean_std_only, (with_palette, mean_std_only)


# ---------------------------------------------------------------- 10-bit, HDR, photos, broken files


def flat(rgb: tuple[int, int, int], n: int = 3) -> list[np.ndarray]:
    a = np.empty((64, 96, 3), np.uint8)
    a[:] = rgb
    a[:, :32] = (200, 60, 30)
    return [a] * n


def test_10_bit_clip_decodes(tmp_path) -> None:
    clip = write_clip(tmp_path / "ten.mp4", flat((120, 130, 140)), pix_fmt="yuv420p10le")
    frame = FootageSource(clip, scene_for(0, 3, out_frame=3), 96, 64, fps=24).frame(1)
    np.testing.assert_allclose(frame[32, 64], (120, 130, 140), atol=4)
    np.testing.assert_allclose(frame[32, 10], (200, 60, 30), atol=6)
    assert footage.media_warnings(media.probe(clip)) == []


@pytest.mark.parametrize("trc,name", [(16, "pq"), (18, "hlg")], ids=["PQ", "HLG"])
def test_hdr_clip_is_tone_mapped_to_sdr(tmp_path, trc, name) -> None:
    clip = write_clip(
        tmp_path / f"{name}.mp4", flat((128, 128, 128)), pix_fmt="yuv420p10le", codec="libx265", trc=trc
    )
    assert footage.hdr_transfer(clip) == name
    assert "HDR" in footage.media_warnings(media.probe(clip))[0]
    naive = next(media.iter_frames(str(clip)))[2]
    frame = FootageSource(clip, scene_for(0, 3, out_frame=3), 96, 64, fps=24).frame(0)
    want = footage.tonemap_hdr(naive[32:33, 64:65].astype(np.float32) / 255.0, name)[0, 0]
    np.testing.assert_allclose(frame[32, 64], want, atol=4)
    assert abs(int(frame[32, 64, 1]) - int(naive[32, 64, 1])) > 20  # not read as if it were SDR
    grey = footage.tonemap_hdr(np.full((1, 1, 3), 0.508, np.float32), "pq")[0, 0]  # 100 nits
    assert 180 < grey[1] < 200


@pytest.mark.parametrize("through", ["pyav", "pil"])
def test_photo_with_exif_orientation_is_upright(tmp_path, monkeypatch, through) -> None:
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (255, 0, 0)  # red on the left as stored; orientation 6 turns it to the top
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    im.save(path, exif=exif.tobytes(), quality=95)
    if through == "pil":

        def refuse(p):
            raise InputError(f"{p}: no video (test)")

        monkeypatch.setattr(media, "probe", refuse)
    frame = FootageSource(path, scene_for(0, 2, photo=True, extend="hold"), 40, 80, fps=24).frame(1)
    assert frame[:30, :, 0].mean() > 200 and frame[50:, :, 0].mean() < 40


def test_a_file_that_breaks_mid_decode_raises_naming_it(tmp_path) -> None:
    frames = [texture(i, 96, 160, (200, 180, 160)) for i in range(48)]
    clip = write_clip(tmp_path / "broken.mp4", frames)
    data = bytearray(clip.read_bytes())
    mid = len(data) // 2
    data[mid : mid + len(data) // 4] = b"\xff" * (len(data) // 4)
    clip.write_bytes(bytes(data))
    scene = scene_for(0, 40, out_frame=40)
    scene["source"]["media"] = "clips/broken.mp4"
    with pytest.raises(InputError, match="broken.mp4"):
        src = FootageSource(clip, scene, 160, 96, fps=24)
        render(src)
