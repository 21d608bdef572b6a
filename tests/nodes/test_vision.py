"""nodes.vision: faces (scikit-image's bundled cascade), on-screen text (RapidOCR), captions from
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
    import av
    from lookalike.nodes import analysis

    rng = np.random.default_rng(1)
    texture = cv2.resize(
        rng.integers(0, 256, (18, 32, 3), dtype=np.uint8), (640, 360), interpolation=cv2.INTER_CUBIC
    )
    frames = [text_frame("FIRST SCENE")] * 12 + [texture] * 12
    path = tmp_path / "two.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 640, 360, "yuv420p"
        for f in frames:
            c.mux(vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(vs.encode(None))
    doc = analysis.analyze(str(path))
    assert [s["start_frame"] for s in doc["scenes"]] == [0, 12]
    cap = vision.OpenAICaptioner(api_key="k-test", base_url=provider.url + "/v1")
    out = vision.analyze_vision(str(path), doc, captioner=cap)
    assert out["vision"]["faces"] == "skimage-lbp-frontalface" and out["vision"]["caption"] == "openai"
    assert [s["caption"] for s in out["scenes"]] == ["A close-up of a bunny."] * 2
    assert all(s["faces"] == [] for s in out["scenes"])
    assert [s["keyframe"] for s in out["scenes"]] == [5, 17]
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        assert out["vision"]["text"].startswith("unavailable")
    else:
        assert " ".join(t["text"] for t in out["scenes"][0]["text"]).replace(" ", "") == "FIRSTSCENE"
        assert out["scenes"][1]["text"] == []
    json.dumps(out, allow_nan=False)
