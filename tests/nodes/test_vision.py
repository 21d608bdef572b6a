"""nodes.vision: faces (scikit-image's and OpenCV's bundled cascades), people (OpenCV's bundled HOG
detector, and faces), on-screen text (RapidOCR), captions from
Anthropic's and OpenAI's APIs served by a local fake server that checks each request the way the
real API would, and the analysis step that fills scenes."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from lookalike.nodes import media, vision

from lookalike.errors import ProviderError

MEDIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "media"


def needs_ocr():
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must test OCR: pip install --no-deps rapidocr_onnxruntime pyclipper shapely")
        pytest.skip("rapidocr_onnxruntime not installed")


def test_face_on_the_astronaut_picture_and_none_on_texture():
    """skimage.data.astronaut(): Eileen Collins, one frontal face at about x 0.34-0.49, y 0.12-0.29."""
    from skimage import data

    det = vision.FaceDetector()
    faces = det.detect(data.astronaut())
    assert len(faces) == 1
    x, y, w, h = faces[0]["box"]
    cx, cy = x + w / 2, y + h / 2
    assert 0.33 < cx < 0.5 and 0.1 < cy < 0.3 and 0.1 < w < 0.3
    rng = np.random.default_rng(0)
    noise = cv2.resize(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), (600, 400))
    assert det.detect(noise) == []


def figure(img: np.ndarray, cx: int, top: int, height: int) -> np.ndarray:
    """Draw a standing clothed person (head, shirt, arms, trousers, shoes) `height` pixels tall, in place."""
    u = height / 8.0  # a head is an eighth of a body

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(cx + x * u)), int(round(top + y * u))

    def px(k: float) -> int:
        return max(1, int(round(k * u)))

    skin, shirt, trousers, dark = (200, 160, 130), (40, 70, 160), (40, 40, 50), (20, 20, 20)
    for side in (-1, 1):
        cv2.line(img, at(0.3 * side, 4.0), at(0.4 * side, 7.7), trousers, px(0.55))
        cv2.ellipse(img, at(0.45 * side, 7.85), (px(0.35), px(0.15)), 0, 0, 360, dark, -1)
        cv2.line(img, at(0.85 * side, 1.45), at(1.05 * side, 4.0), shirt, px(0.35))
        cv2.circle(img, at(1.07 * side, 4.2), px(0.2), skin, -1)
    torso = np.array([at(-0.9, 1.3), at(0.9, 1.3), at(0.65, 4.2), at(-0.65, 4.2)], np.int32)
    cv2.fillPoly(img, [torso], shirt)
    cv2.rectangle(img, at(-0.18, 0.85), at(0.18, 1.35), skin, -1)
    cv2.ellipse(img, at(0, 0.5), (px(0.36), px(0.5)), 0, 0, 360, skin, -1)
    cv2.ellipse(img, at(0, 0.25), (px(0.38), px(0.28)), 0, 180, 360, (30, 25, 20), -1)
    return img


def backdrops() -> dict[str, np.ndarray]:
    """640x360 backgrounds: a flat wall and scikit-image's brick texture."""
    from skimage import data

    return {
        "flat": np.full((360, 640, 3), (150, 170, 190), np.uint8),
        "brick": cv2.resize(np.stack([data.brick()] * 3, axis=-1), (640, 360)),
    }


@pytest.mark.parametrize("backdrop", ["flat", "brick"])
def test_people_on_synthesized_figures_and_none_in_empty_scenes(backdrop):
    """Figures 120 and 140 px tall (a third and 39% of the frame) at known places; the bare backdrop
    and a noise texture hold nobody. (HOG's recall on such figures is partial: see PEOPLE_MIN_SCORE.)"""
    bg = backdrops()[backdrop]
    det = vision.PeopleDetector()
    assert det.detect(bg) == []
    rng = np.random.default_rng(0)
    assert det.detect(cv2.resize(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), (640, 360))) == []
    one = figure(bg.copy(), 200, 120, 120)
    (body,) = det.detect(one)
    x, y, w, h = body["box"]
    assert x < 200 / 640 < x + w and y < 120 / 360 and y + h > 240 / 360 and h < 0.7
    two = figure(one.copy(), 460, 110, 140)
    bodies = det.detect(two)
    assert len(bodies) == 2
    centres = sorted(b["box"][0] + b["box"][2] / 2 for b in bodies)
    assert centres == pytest.approx([200 / 640, 460 / 640], abs=0.03)
    people = vision.people_in_frame(bodies, [])
    assert [p["source"] for p in people] == ["body", "body"]
    assert vision.people_share(people) == pytest.approx(sum(p["share"] for p in people), abs=0.01)


def test_the_astronaut_is_one_person_found_by_her_face():
    """skimage.data.astronaut(): a head-and-shoulders portrait, no whole body for HOG to find."""
    from skimage import data

    rgb = data.astronaut()
    faces = vision.FaceDetector().detect(rgb)
    bodies = vision.PeopleDetector().detect(rgb)
    (person,) = vision.people_in_frame(bodies, faces)
    assert person["source"] == "face" and bodies == []
    fx, fy, fw, fh = faces[0]["box"]
    x, y, w, h = person["box"]
    assert x < fx and x + w > fx + fw and y < fy and y + h == pytest.approx(1.0, abs=1e-3)
    assert 0.3 < person["share"] < 0.8


@pytest.mark.skipif(not (MEDIA / "ground_truth.json").exists(), reason="shared media not present")
def test_faces_in_real_frames():
    """GoldenEye frame 150: Natalya faces the camera (Boris, in glasses and turned, is not frontal).
    Big Buck Bunny frames 48, 264, 300 and testvideo frame 48 hold no human face: grass, bark and
    shutters that the LBP cascade alone took for faces."""
    det = vision.FaceDetector()
    _, _, rgb = next(
        media.iter_frames(str(MEDIA / "shots/goldeneye-vfr-drop3.mp4"), 150, 151, size=(640, 272))
    )
    (face,) = det.detect(rgb)
    x, y, w, h = face["box"]
    assert 0.5 < x + w / 2 < 0.6 and 0.25 < y + h / 2 < 0.45
    for name, index in [("samples/big_buck_bunny_0_30.webm", i) for i in (48, 264, 300)] + [
        ("shots/testvideo.mp4", 48)
    ]:
        _, _, rgb = next(media.iter_frames(str(MEDIA / name), index, index + 1, size=(640, 360)))
        assert det.detect(rgb) == [], f"{name} frame {index}"


def _write_clip(path: Path, frames: list) -> Path:
    """640x360 rgb24 frames as an H.264 clip at 24 fps."""
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        for f in frames:
            c.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(vs.encode(None))
    return path


def test_analyze_vision_counts_people_per_scene(tmp_path):
    """Two shots (the bare brick wall, then two figures before a flat wall): nobody, then two people."""

    bg = backdrops()
    frames = [bg["brick"]] * 12 + [figure(figure(bg["flat"].copy(), 200, 120, 120), 460, 110, 140)] * 12
    path = _write_clip(tmp_path / "people.mp4", frames)

    def doc() -> dict:
        return {
            "source": {"width": 640, "height": 360},
            "scenes": [
                {"index": 0, "start_frame": 0, "end_frame": 12},
                {"index": 1, "start_frame": 12, "end_frame": 24},
            ],
        }

    out = vision.analyze_vision(str(path), doc(), text=False)
    assert out["vision"]["people"] == "opencv-hog-people+faces"
    first, second = out["scenes"]
    assert (first["people"], first["people_count"], first["people_share"]) == ([], 0, 0.0)
    assert second["people_count"] == 2 and [p["source"] for p in second["people"]] == ["body", "body"]
    assert 0.05 < second["people_share"] < 0.3
    off = vision.analyze_vision(str(path), doc(), people=False, text=False)
    assert off["vision"]["people"] == "off" and "people" not in off["scenes"][1]
    json.dumps(out, allow_nan=False)


def text_frame(words: str, w: int = 640, h: int = 360) -> np.ndarray:
    img = np.full((h, w, 3), (30, 60, 90), np.uint8)
    cv2.putText(img, words, (40, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (250, 250, 250), 4)
    return img


def test_ocr_reads_synthesized_text():
    needs_ocr()
    lines = vision.TextReader().read(text_frame("CAMERA PAN 42"))
    assert len(lines) == 1
    assert lines[0]["text"].replace(" ", "") == "CAMERAPAN42"
    assert 0.0 < lines[0]["box"][0] < 0.2 and lines[0]["confidence"] > 0.8


@pytest.mark.skipif(not (MEDIA / "ground_truth.json").exists(), reason="shared media not present")
def test_ocr_reads_the_big_buck_bunny_title():
    """Frames 540-550 carry 'THE PEACH OPEN MOVIE PROJECT PRESENTS' (ground_truth.json notes)."""
    needs_ocr()
    path = str(MEDIA / "samples/big_buck_bunny_0_30.webm")
    _, _, rgb = next(media.iter_frames(path, 545, 546, size=(640, 360)))
    words = " ".join(t["text"] for t in vision.TextReader().read(rgb)).upper().replace(" ", "")
    for word in ("PEACH", "OPEN", "MOVIE", "PROJECT"):
        assert word in words


class FakeProvider:
    """A loopback HTTP server speaking Anthropic's Messages or OpenAI's Chat Completions API."""

    def __init__(self, kind: str, status: int = 200):
        self.kind, self.status, self.requests = kind, status, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append((self.path, dict(self.headers), body))
                reply, code = outer.answer(self.path, self.headers, body)
                data = json.dumps(reply).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path, headers, body):
        if self.status != 200:
            return {
                "type": "error",
                "error": {"type": "rate_limit_error", "message": "slow down"},
            }, self.status
        content = body["messages"][0]["content"]
        if self.kind == "anthropic":
            ok = (
                path == "/v1/messages"
                and headers["x-api-key"] == "k-test"
                and headers["anthropic-version"] == "2023-06-01"
                and body["max_tokens"] > 0
                and content[0]["type"] == "image"
                and content[0]["source"]["media_type"] == "image/jpeg"
                and base64.b64decode(content[0]["source"]["data"])[:2] == b"\xff\xd8"
                and content[1]["type"] == "text"
            )
            if not ok:
                return {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}, 400
            return {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": "A wide shot of a sunny meadow."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 10, "output_tokens": 8},
            }, 200
        url = content[1]["image_url"]["url"]
        ok = (
            path == "/v1/chat/completions"
            and headers["authorization"] == "Bearer k-test"
            and content[0]["type"] == "text"
            and url.startswith("data:image/jpeg;base64,")
            and base64.b64decode(url.split(",", 1)[1])[:2] == b"\xff\xd8"
        )
        if not ok:
            return {"error": {"message": "bad request", "type": "invalid_request_error"}}, 400
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " A close-up of a bunny. "},
                    "finish_reason": "stop",
                }
            ],
        }, 200

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider(request):
    fake = FakeProvider(*request.param)
    yield fake
    fake.close()


@pytest.mark.parametrize("provider", [("anthropic",)], indirect=True)
def test_anthropic_caption(provider):
    cap = vision.AnthropicCaptioner(api_key="k-test", base_url=provider.url)
    assert cap.caption(vision.jpeg_bytes(text_frame("HI"))) == "A wide shot of a sunny meadow."
    assert len(provider.requests) == 1


@pytest.mark.parametrize("provider", [("openai",)], indirect=True)
def test_openai_caption(provider):
    cap = vision.OpenAICaptioner(api_key="k-test", base_url=provider.url + "/v1")
    assert cap.caption(vision.jpeg_bytes(text_frame("HI"))) == "A close-up of a bunny."


@pytest.mark.parametrize(
    ("provider", "transient"),
    [(("anthropic", 429), True), (("anthropic", 401), False)],
    indirect=["provider"],
)
def test_provider_errors_say_whether_to_retry(provider, transient):
    cap = vision.AnthropicCaptioner(api_key="k-test", base_url=provider.url)
    with pytest.raises(ProviderError) as info:
        cap.caption(vision.jpeg_bytes(text_frame("HI")))
    assert info.value.transient is transient


@pytest.mark.parametrize("provider", [("openai",)], indirect=True)
def test_analyze_vision_fills_scenes(tmp_path, provider):
    """Two shots (a title card, then a texture): text in the first, none in the second, a caption each."""
    from lookalike.nodes import analysis

    rng = np.random.default_rng(1)
    texture = cv2.resize(
        rng.integers(0, 256, (18, 32, 3), dtype=np.uint8), (640, 360), interpolation=cv2.INTER_CUBIC
    )
    frames = [text_frame("FIRST SCENE")] * 12 + [texture] * 12
    path = _write_clip(tmp_path / "two.mp4", frames)
    doc = analysis.analyze(str(path))
    assert [s["start_frame"] for s in doc["scenes"]] == [0, 12]
    cap = vision.OpenAICaptioner(api_key="k-test", base_url=provider.url + "/v1")
    out = vision.analyze_vision(str(path), doc, captioner=cap)
    assert (
        out["vision"]["faces"] == "skimage-lbp-frontalface+opencv-haar"
        and out["vision"]["caption"] == "openai"
    )
    assert [s["caption"] for s in out["scenes"]] == ["A close-up of a bunny."] * 2
    assert all(s["faces"] == [] and s["people"] == [] and s["people_count"] == 0 for s in out["scenes"])
    assert [s["keyframe"] for s in out["scenes"]] == [5, 17]
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        assert out["vision"]["text"].startswith("unavailable")
    else:
        assert " ".join(t["text"] for t in out["scenes"][0]["text"]).replace(" ", "") == "FIRSTSCENE"
        assert out["scenes"][1]["text"] == []
    json.dumps(out, allow_nan=False)


def test_frames_smaller_than_the_people_window_have_nobody_and_do_not_crash(tmp_path):
    """OpenCV 4.x's HOG crashes (SIGSEGV) on an image smaller than its 64x128 window: a 96x54 sample
    killed every node of the load test. Such frames simply hold no whole body."""
    from lookalike.nodes import analysis
    from synth import make_clip

    det = vision.PeopleDetector()
    for h, w in ((54, 96), (127, 300), (300, 63)):
        assert det.detect(np.zeros((h, w, 3), np.uint8)) == []
    path = tmp_path / "tiny.mp4"
    make_clip(path, [(12, (200, 60, 90), 1.0), (10, (70, 90, 220), 0.0)], size=(96, 54))
    doc = vision.analyze_vision(str(path), analysis.analyze(str(path)))
    assert [s["people_count"] for s in doc["scenes"]] == [0, 0]
