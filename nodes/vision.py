"""What is in each scene's key frame: faces, on-screen text, and an optional caption from a
vision-language provider. Fills the `faces`, `text` and `caption` fields of analysis.json scenes.

Every model ships inside its package, so nothing is fetched at run time:
- faces: scikit-image's bundled LBP frontal-face cascade (`skimage.data.lbp_frontal_face_cascade_filename`;
  OpenCV 5 no longer ships Haar cascades or the HOG people detector). A hit counts as a face only when
  at least FACE_MIN_SKIN of its centre is skin-coloured (the cascade also fires on flags and foliage).
- text: RapidOCR (`rapidocr_onnxruntime`, ONNX detection and recognition models inside the wheel).
  Its wheel declares opencv-python, which would shadow opencv-python-headless: install it with
  `pip install --no-deps rapidocr_onnxruntime` (its other dependencies are ordinary).
- caption: `AnthropicCaptioner` (Messages API) or `OpenAICaptioner` (Chat Completions API), plain
  HTTPS with the standard library, pointed at any base URL (tests use a local fake server).

What is missing is reported, never silently skipped: `analyze_vision` returns the document with
`vision: {"faces": "...", "text": "...", "caption": "..."}` saying what ran or why it did not.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from lookalike.nodes import media

from lookalike.errors import InputError, ProviderError

KEYFRAME_LONG_SIDE = 640
FACE_MIN_SKIN = 0.3
CAPTION_PROMPT = (
    "Describe this video frame in one sentence for a film editor: subject, setting, shot size, "
    "lighting and mood. No preamble."
)


def keyframe_index(scene: dict[str, Any]) -> int:
    """The frame that stands for a scene: its middle frame."""
    return (int(scene["start_frame"]) + int(scene["end_frame"]) - 1) // 2


def _keyframe_size(doc: dict[str, Any]) -> tuple[int, int]:
    src = doc["source"]
    w, h = int(src["width"]), int(src["height"])  # already the display orientation (media.probe)
    scale = min(1.0, KEYFRAME_LONG_SIDE / max(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


# --- faces ----------------------------------------------------------------------------------------


class FaceDetector:
    """Frontal faces with scikit-image's bundled LBP cascade."""

    name = "skimage-lbp-frontalface"

    def __init__(self, *, min_skin: float = FACE_MIN_SKIN) -> None:
        from skimage import data, feature

        self._cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())
        self.min_skin = min_skin

    def detect(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        """Faces as {"box": [x, y, w, h] in fractions of the frame, "skin": share}, largest first."""
        h, w = rgb.shape[:2]
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
        side = min(h, w)
        raw = self._cascade.detect_multi_scale(
            img=grey,
            scale_factor=1.2,
            step_ratio=1,
            min_size=(max(24, side // 20), max(24, side // 20)),
            max_size=(side, side),
        )
        ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
        faces = []
        for d in raw:
            x, y, bw, bh = int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])
            # The cascade also fires on flags and foliage: keep boxes whose centre is mostly skin
            # (the classic YCrCb skin range, which spans skin tones but not saturated colours).
            core = ycc[y + bh // 4 : y + 3 * bh // 4, x + bw // 4 : x + 3 * bw // 4].reshape(-1, 3)
            cr, cb = core[:, 1].astype(int), core[:, 2].astype(int)
            skin = float(np.mean((cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127))) if len(core) else 0.0
            if skin < self.min_skin:
                continue
            faces.append(
                {
                    "box": [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)],
                    "skin": round(skin, 3),
                }
            )
        return sorted(faces, key=lambda f: -f["box"][2] * f["box"][3])


# --- on-screen text -------------------------------------------------------------------------------


class TextReader:
    """On-screen text with RapidOCR; raises ConfigError-style InputError when it is not installed."""

    name = "rapidocr-onnxruntime"

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise InputError(
                "on-screen text needs RapidOCR, which is not installed",
                hint="pip install --no-deps rapidocr_onnxruntime pyclipper shapely",
            ) from exc
        self._engine = RapidOCR()
        self.min_confidence = min_confidence

    def read(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        """Text lines as {"text", "confidence", "box": [x, y, w, h] in fractions of the frame}."""
        h, w = rgb.shape[:2]
        result, _ = self._engine(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        out = []
        for quad, text, conf in result or []:
            if float(conf) < self.min_confidence or not str(text).strip():
                continue
            q = np.asarray(quad, dtype=np.float64)
            x0, y0 = q.min(axis=0)
            x1, y1 = q.max(axis=0)
            out.append(
                {
                    "text": str(text),
                    "confidence": round(float(conf), 4),
                    "box": [
                        round(x0 / w, 4),
                        round(y0 / h, 4),
                        round((x1 - x0) / w, 4),
                        round((y1 - y0) / h, 4),
                    ],
                }
            )
        return sorted(out, key=lambda t: (t["box"][1], t["box"][0]))


# --- captions -------------------------------------------------------------------------------------


class Captioner(Protocol):
    """A vision-language provider: one sentence about a picture."""

    name: str

    def caption(self, jpeg: bytes, prompt: str = CAPTION_PROMPT) -> str: ...


def _post_json(url: str, headers: dict[str, str], body: dict[str, Any], timeout: float, who: str) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        transient = exc.code in (408, 409, 429) or exc.code >= 500
        raise ProviderError(
            f"{who} answered HTTP {exc.code}: {detail}",
            transient=transient,
            hint="retry later" if transient else "check the API key, model name and request",
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ProviderError(f"{who} is unreachable: {exc}", transient=True, hint="check the network") from exc
    except json.JSONDecodeError as exc:
        raise ProviderError(f"{who} answered something that is not JSON", transient=True) from exc


@dataclass
class AnthropicCaptioner:
    """Claude through the Messages API (POST {base_url}/v1/messages)."""

    api_key: str
    model: str = "claude-sonnet-4-5"
    base_url: str = "https://api.anthropic.com"
    timeout_s: float = 60.0
    max_tokens: int = 200
    name: str = "anthropic"

    def caption(self, jpeg: bytes, prompt: str = CAPTION_PROMPT) -> str:
        body = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": base64.b64encode(jpeg).decode(),
                            },
                        },
                        {"type": "text", "text": prompt},
                    ],
                }
            ],
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        doc = _post_json(
            self.base_url.rstrip("/") + "/v1/messages", headers, body, self.timeout_s, "Anthropic"
        )
        texts = [c.get("text", "") for c in doc.get("content", []) if c.get("type") == "text"]
        if not texts:
            raise ProviderError(f"Anthropic returned no text: {str(doc)[:200]}", transient=False)
        return " ".join(t.strip() for t in texts).strip()


@dataclass
class OpenAICaptioner:
    """An OpenAI model through the Chat Completions API (POST {base_url}/chat/completions)."""

    api_key: str
    model: str = "gpt-4o-mini"
    base_url: str = "https://api.openai.com/v1"
    timeout_s: float = 60.0
    max_tokens: int = 200
    name: str = "openai"

    def caption(self, jpeg: bytes, prompt: str = CAPTION_PROMPT) -> str:
        url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        body = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        }
        headers = {"authorization": f"Bearer {self.api_key}"}
        doc = _post_json(
            self.base_url.rstrip("/") + "/chat/completions", headers, body, self.timeout_s, "OpenAI"
        )
        try:
            text = doc["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(f"OpenAI returned no message: {str(doc)[:200]}", transient=False) from exc
        return str(text).strip()


def jpeg_bytes(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )
    if not ok:
        raise InputError("could not encode a key frame as JPEG")
    return buf.tobytes()


# --- the analysis step ----------------------------------------------------------------------------


def analyze_vision(
    path: str,
    doc: dict[str, Any],
    *,
    faces: bool = True,
    text: bool = True,
    captioner: Captioner | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fill each scene's `faces`, `text` (and `caption` with a captioner) from its key frame.

    Returns the same document, changed in place, with `vision` saying per part what ran ("<model>")
    or why not ("unavailable: ..." / "off"). A captioner's ProviderError is recorded in that scene's
    `caption_error` and the other scenes go on.
    """
    status: dict[str, str] = {"faces": "off", "text": "off", "caption": "off"}
    face_det = reader = None
    if faces:
        try:
            face_det = FaceDetector()
            status["faces"] = face_det.name
        except ImportError as exc:
            status["faces"] = f"unavailable: {exc} (pip install scikit-image)"
    if text:
        try:
            reader = TextReader()
            status["text"] = reader.name
        except InputError as exc:
            status["text"] = f"unavailable: {exc.message} ({exc.hint})"
    if captioner is not None:
        status["caption"] = captioner.name
    scenes = doc["scenes"]
    size = _keyframe_size(doc)
    for k, sc in enumerate(scenes):
        idx = keyframe_index(sc)
        _, _, rgb = next(media.iter_frames(path, idx, idx + 1, size=size))
        sc["keyframe"] = idx
        if face_det is not None:
            sc["faces"] = face_det.detect(rgb)
        if reader is not None:
            sc["text"] = reader.read(rgb)
        if captioner is not None:
            try:
                sc["caption"] = captioner.caption(jpeg_bytes(rgb))
            except ProviderError as exc:
                sc["caption"] = None
                sc["caption_error"] = exc.message
        if progress is not None:
            progress(k + 1, len(scenes))
    doc["vision"] = status
    return doc
