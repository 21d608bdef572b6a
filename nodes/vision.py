"""What is in each scene's key frame: faces, people, on-screen text, and an optional caption from a
vision-language provider. Fills the `faces`, `people` (with `people_count`, `people_share`), `text` and
`caption` fields of analysis.json scenes.

Every model ships inside its package, so nothing is fetched at run time:
- faces: scikit-image's bundled LBP frontal-face cascade (`skimage.data.lbp_frontal_face_cascade_filename`).
  A hit counts as a face only when at least FACE_MIN_SKIN of its centre is skin-coloured and OpenCV's
  bundled Haar frontal-face cascade (`cv2.data.haarcascades`, OpenCV 4.x) finds it too (the LBP
  cascade also fires on flags, foliage and bark).
- people: OpenCV's bundled HOG pedestrian detector (`cv2.HOGDescriptor_getDefaultPeopleDetector`,
  OpenCV 4.x; OpenCV 5 dropped it and the Haar cascades, hence the `<5` pin in pyproject.toml) for
  whole standing bodies, plus one person per face that no body holds (close and medium shots show
  no whole body).
- text: RapidOCR (`rapidocr_onnxruntime`, ONNX detection and recognition models inside the wheel);
  each line's `colour` is measured in its box of the key frame (`overlay.text_colour`).
  Its wheel declares opencv-python, which would shadow opencv-python-headless: install it with
  `pip install --no-deps rapidocr_onnxruntime` (its other dependencies are ordinary).
- caption: `AnthropicCaptioner` (Messages API) or `OpenAICaptioner` (Chat Completions API), plain
  HTTPS with the standard library, pointed at any base URL (tests use a local fake server).

What is missing is reported, never silently skipped: `analyze_vision` returns the document with
`vision: {"faces": "...", "people": "...", "text": "...", "caption": "..."}` saying what ran or why not.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from lookalike.nodes import media, overlay
from lookalike.nodes.formats import subject_centre

from lookalike.errors import InputError, ProviderError

KEYFRAME_LONG_SIDE = 640
OPENCV_4_HINT = "pip install 'opencv-python-headless>=4.8,<5'"
FACE_MIN_SKIN = 0.3
# HOG window scores (SVM margins) below this are dropped. Measured on 640-wide frames: the shared
# media (Big Buck Bunny, GoldenEye, testvideo, issue-134; 307 frames, every 6th, no whole standing
# person in any) score at most 1.35, a tree trunk in Big Buck Bunny, and 1 frame of 307 passes 1.2;
# a synthesized clothed figure 100-240 px tall scores 1.2-3.0 on flat and brick backgrounds but is
# mostly missed on grass or gravel (16 of 30 figures on five backgrounds reach 1.2).
PEOPLE_MIN_SCORE = 1.2
# A face box (brow to chin) is about a seventh of a standing body's height and a third of its width.
BODY_FACE_HEIGHTS = 7.0
BODY_FACE_WIDTHS = 3.0
# Shot scale from the largest face's height (box height / frame height), after the usual film
# sizes counted in face heights: a close-up (head and shoulders, or tighter) frames at most about
# three face heights; a medium shot (waist or knees up) is too short for a whole body, under
# BODY_FACE_HEIGHTS face heights; a wide shot holds whole bodies (a face at most a seventh of the
# frame), or no face at all (a landscape, a crowd far off, or bodies with no frontal face).
CLOSE_FACE_HEIGHT = 1 / 3
MEDIUM_FACE_HEIGHT = 1 / BODY_FACE_HEIGHTS
# How far the largest face pulls the salient centre from the saliency centroid toward itself: the
# face weighs three times the rest of the picture (reframing on a person keeps the face in view).
FACE_PULL = 0.75
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
    """Frontal faces with scikit-image's bundled LBP cascade, each confirmed by OpenCV's bundled Haar
    frontal-face cascade around it.

    The LBP cascade plus the skin check alone fired on 9 of 134 frames of the shared media taken
    every 12th (grass, bark, shutters in Big Buck Bunny and testvideo) and on two scene key frames;
    the Haar cascade confirmed none of those 11 and confirms the real faces (the astronaut,
    GoldenEye's Natalya).
    """

    name = "skimage-lbp-frontalface+opencv-haar"

    def __init__(self, *, min_skin: float = FACE_MIN_SKIN) -> None:
        from skimage import data, feature

        haar = (
            Path(getattr(getattr(cv2, "data", None), "haarcascades", ""))
            / "haarcascade_frontalface_default.xml"
        )
        if not haar.is_file():
            raise ImportError(
                f"OpenCV {cv2.__version__} ships no Haar cascades (OpenCV 5 dropped them): {OPENCV_4_HINT}"
            )
        self._cascade = feature.Cascade(data.lbp_frontal_face_cascade_filename())
        self._haar = cv2.CascadeClassifier(str(haar))
        self.min_skin = min_skin

    def detect(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        """Faces as {"box": [x, y, w, h] in fractions of the frame, "skin": share}, largest first.

        The Haar cascade scans the whole frame first (about 0.06 s on a 640-wide frame); the slow LBP
        scan (about 0.35 s over a whole frame) runs only around its hits, and a frame with none is
        answered at once. Measured on the shared footage's first, middle and last frames (45
        frames): every frame with a face confirmed by the whole-frame LBP scan (10) has a Haar hit;
        the same faces are found (boxes within a few pixels) plus one more in a crowd, in half the
        time overall."""
        h, w = rgb.shape[:2]
        grey8 = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        side = min(h, w)
        small = max(12, side // 40)
        hits = self._haar.detectMultiScale(grey8, scaleFactor=1.1, minNeighbors=3, minSize=(small, small))
        if not len(hits):
            return []
        # The LBP scan runs around Haar's hits only (each grown by its size on every side): a box
        # the Haar check confirms has a Haar face of at least 0.6 its size next to it.
        grey = grey8.astype(np.float64) / 255.0
        lo = max(24, side // 20)
        raw = []
        for x0, y0, x1, y1 in _regions(hits, w, h):
            crop = grey[y0:y1, x0:x1]
            top = min(crop.shape[0], crop.shape[1], side)
            if top < lo:
                continue
            for d in self._cascade.detect_multi_scale(
                img=crop, scale_factor=1.2, step_ratio=1, min_size=(lo, lo), max_size=(top, top)
            ):
                raw.append(dict(d, r=int(d["r"]) + y0, c=int(d["c"]) + x0))
        ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
        faces: list[dict[str, Any]] = []
        for d in sorted(raw, key=lambda d: -int(d["width"]) * int(d["height"])):
            x, y, bw, bh = int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])
            box = [x / w, y / h, bw / w, bh / h]
            if any(_inside(box, f["box"]) > 0.5 for f in faces):
                continue  # the same face again at a nearby position or scale
            # The cascade also fires on flags and foliage: keep boxes whose centre is mostly skin
            # (the classic YCrCb skin range, which spans skin tones but not saturated colours).
            core = ycc[y + bh // 4 : y + 3 * bh // 4, x + bw // 4 : x + 3 * bw // 4].reshape(-1, 3)
            cr, cb = core[:, 1].astype(int), core[:, 2].astype(int)
            skin = float(np.mean((cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127))) if len(core) else 0.0
            if skin < self.min_skin or not self._confirmed(grey8, x, y, bw, bh):
                continue
            faces.append({"box": box, "skin": round(skin, 3)})
        for f in faces:
            f["box"] = [round(v, 4) for v in f["box"]]
        return faces

    def _confirmed(self, grey8: np.ndarray, x: int, y: int, bw: int, bh: int) -> bool:
        """Whether the Haar cascade finds a face of about this size in the box grown by half a box."""
        h, w = grey8.shape
        crop = grey8[
            max(0, y - bh // 2) : min(h, y + bh + bh // 2), max(0, x - bw // 2) : min(w, x + bw + bw // 2)
        ]
        found = self._haar.detectMultiScale(
            crop, scaleFactor=1.1, minNeighbors=3, minSize=(int(0.6 * bw), int(0.6 * bh))
        )
        return len(found) > 0


def _regions(hits: Any, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) around each (x, y, bw, bh) hit grown by its size on every side, clipped to the
    frame, with overlapping ones merged (so a face is scanned once)."""
    boxes = sorted(
        (max(0, x - bw), max(0, y - bh), min(w, x + 2 * bw), min(h, y + 2 * bh))
        for x, y, bw, bh in np.reshape(hits, (-1, 4)).tolist()
    )
    merged: list[list[int]] = []
    for b in boxes:
        for m in merged:
            if b[0] < m[2] and m[0] < b[2] and b[1] < m[3] and m[1] < b[3]:
                m[:] = [min(m[0], b[0]), min(m[1], b[1]), max(m[2], b[2]), max(m[3], b[3])]
                break
        else:
            merged.append(list(b))
    return [tuple(m) for m in merged]


# --- people ---------------------------------------------------------------------------------------


class PeopleDetector:
    """Whole standing bodies with OpenCV's bundled HOG + linear SVM pedestrian detector (Dalal and
    Triggs 2005). A body must be in full view and about 100 pixels tall or more (it fills ~3/4 of the
    128-pixel window; with 640-wide key frames, over a quarter of a 16:9 frame's height); faces stand
    for people closer than that."""

    name = "opencv-hog-people"

    def __init__(self, *, min_score: float = PEOPLE_MIN_SCORE) -> None:
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise ImportError(
                f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 dropped it): {OPENCV_4_HINT}"
            )
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_score = min_score

    def detect(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        """Bodies as {"box": [x, y, w, h] in fractions of the frame, "score"}, best first."""
        h, w = rgb.shape[:2]
        win_w, win_h = self._hog.winSize
        if h < win_h or w < win_w:
            # No body fits a frame smaller than the detector's window (and OpenCV 4.x crashes on one).
            return []
        boxes, weights = self._hog.detectMultiScale(
            np.ascontiguousarray(rgb), winStride=(8, 8), padding=(8, 8), scale=1.05
        )
        found = sorted(
            (
                (float(s), [max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)])
                for (x, y, bw, bh), s in zip(
                    np.reshape(boxes, (-1, 4)).tolist(), np.ravel(weights).tolist(), strict=True
                )
                if s >= self.min_score
            ),
            key=lambda f: -f[0],
        )
        kept: list[tuple[float, list[float]]] = []
        for score, (x0, y0, x1, y1) in found:
            box = [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h]
            # One person: a window mostly inside a better one is a part of that body (a torso, legs).
            if all(_inside(box, other) < 0.5 for _, other in kept):
                kept.append((score, box))
        return [{"box": [round(v, 4) for v in box], "score": round(score, 3)} for score, box in kept]


def _inside(a: list[int] | list[float], b: list[int] | list[float]) -> float:
    """Share of box a's area that lies inside box b (boxes as x, y, w, h)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(a[2] * a[3], 1e-12)


def people_in_frame(bodies: list[dict[str, Any]], faces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per person: each body (`source` "body"), then each face that no body holds
    (`source` "face", its box the body it implies: BODY_FACE_WIDTHS face widths wide, from a little
    above the face down BODY_FACE_HEIGHTS face heights, clipped to the frame). Each with `share`, the
    part of the frame its box covers; largest first."""
    people = [{"box": list(b["box"]), "source": "body", "score": b["score"]} for b in bodies]
    for f in faces:
        fx, fy, fw, fh = f["box"]
        if any(_inside(f["box"], b["box"]) > 0.5 for b in bodies):
            continue
        x0 = max(0.0, fx + fw / 2 - BODY_FACE_WIDTHS * fw / 2)
        x1 = min(1.0, fx + fw / 2 + BODY_FACE_WIDTHS * fw / 2)
        y0 = max(0.0, fy - 0.25 * fh)
        y1 = min(1.0, fy + BODY_FACE_HEIGHTS * fh)
        people.append(
            {"box": [round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4)], "source": "face"}
        )
    for p in people:
        p["share"] = round(p["box"][2] * p["box"][3], 4)
    return sorted(people, key=lambda p: -p["share"])


def people_share(people: list[dict[str, Any]], grid: int = 200) -> float:
    """The part of the frame that people cover (overlapping boxes counted once), on a grid x grid raster."""
    mask = np.zeros((grid, grid), dtype=bool)
    for p in people:
        x, y, w, h = p["box"]
        mask[
            int(round(y * grid)) : int(round((y + h) * grid)),
            int(round(x * grid)) : int(round((x + w) * grid)),
        ] = True
    return round(float(mask.mean()), 4)


def shot_scale(faces: list[dict[str, Any]]) -> str:
    """The shot scale, "close", "medium" or "wide", from the largest face's height (CLOSE_FACE_HEIGHT,
    MEDIUM_FACE_HEIGHT).

    The people's share adds nothing the faces do not say: a person found by a face is a box
    implied by that face, and one found without a face is a whole standing body (all the HOG
    detector finds), so a frame of bodies, like a frame with nobody, is wide.
    """
    tallest = max((f["box"][3] for f in faces), default=0.0)
    if tallest >= CLOSE_FACE_HEIGHT:
        return "close"
    if tallest >= MEDIUM_FACE_HEIGHT:
        return "medium"
    return "wide"


def salient_point(rgb: np.ndarray, faces: list[dict[str, Any]]) -> list[float] | None:
    """[cx, cy] (frame fractions) of what stands out in `rgb`: the frequency-tuned saliency centre
    (`formats.subject_centre`) pulled FACE_PULL of the way toward the largest face's centre; the
    face's centre alone when nothing else stands out; None with neither."""
    centre = subject_centre(rgb)
    if faces:
        x, y, w, h = max(faces, key=lambda f: f["box"][2] * f["box"][3])["box"]
        face = (x + w / 2, y + h / 2)
        if centre is None:
            centre = face
        else:
            centre = tuple(FACE_PULL * f + (1 - FACE_PULL) * c for f, c in zip(face, centre, strict=True))
    return None if centre is None else [round(float(v), 4) for v in centre]


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
        # LOOKALIKE_NODE_THREADS (set by the embedded farm for its nodes): ONNX Runtime's pool size.
        threads = int(os.environ.get("LOOKALIKE_NODE_THREADS", "0") or 0)
        self._engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=threads) if threads > 0 else RapidOCR()
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


_DETECTORS = threading.local()


def _reused(cls: type) -> Any:
    """One `cls()` per thread, made on first use: a node analyses every media item of a remake, and
    loading the cascades and the OCR models each time cost about 0.5 s per item. Per thread, since
    the node serves jobs on several threads and none of the detectors is documented thread-safe."""
    made = getattr(_DETECTORS, "made", None)
    if made is None:
        made = _DETECTORS.made = {}
    if cls not in made:
        made[cls] = cls()
    return made[cls]


def analyze_vision(
    path: str,
    doc: dict[str, Any],
    *,
    faces: bool = True,
    people: bool = True,
    text: bool = True,
    captioner: Captioner | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fill each scene's `faces`, `people`, `people_count`, `people_share`, `text`, `salient`,
    `scale` (and `caption` with a captioner) from its key frame.

    Returns the same document, changed in place, with `vision` saying per part what ran ("<model>")
    or why not ("unavailable: ..." / "off"). People come from bodies and, where faces ran, from faces
    no body holds. A captioner's ProviderError is recorded in that scene's `caption_error` and the
    other scenes go on. `salient` is always filled (`salient_point`); `scale` only where faces
    ran (`shot_scale`; it stays null otherwise: with no face detector a close-up reads as wide).
    """
    status: dict[str, str] = {"faces": "off", "people": "off", "text": "off", "caption": "off"}
    face_det = body_det = reader = None
    if faces:
        try:
            face_det = _reused(FaceDetector)
            status["faces"] = face_det.name
        except ImportError as exc:
            status["faces"] = f"unavailable: {exc}"
    if people:
        try:
            body_det = _reused(PeopleDetector)
            status["people"] = body_det.name + ("+faces" if face_det is not None else "")
        except ImportError as exc:
            status["people"] = f"unavailable: {exc}"
    if text:
        try:
            reader = _reused(TextReader)
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
        if body_det is not None:
            found = people_in_frame(body_det.detect(rgb), sc["faces"] if face_det is not None else [])
            sc["people"], sc["people_count"], sc["people_share"] = found, len(found), people_share(found)
        found_faces = sc["faces"] if face_det is not None else []
        sc["salient"] = salient_point(rgb, found_faces)
        sc["scale"] = shot_scale(found_faces) if face_det is not None else None
        if reader is not None:
            sc["text"] = reader.read(rgb)
            for line in sc["text"]:
                line["colour"] = overlay.text_colour(rgb, line["box"])
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
