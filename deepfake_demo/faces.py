"""Find faces (MTCNN), crop them (the ONE crop function, shared with training),
and link them across frames into tracks, one per person."""
from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np

from .config import DETECTOR, DetectorSettings

if TYPE_CHECKING:  # pragma: no cover
    from facenet_pytorch import MTCNN

__all__ = [
    "FaceBox",
    "crop_face",
    "square_box",
    "face_detail",
    "DETAIL_MARGIN",
    "DETAIL_SIZE",
    "load_face_detector",
    "detect_faces",
    "detect_near",
    "detect_frames",
    "detect_faces_batch",
    "link_tracks",
    "box_iou",
    "landmark_geometry",
    "required_prob",
    "plausible_face",
    "persistent",
    "RULES_OFF",
]

_INTERP = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
}


@dataclass(frozen=True)
class FaceBox:
    """A detected face in full-resolution pixels: box (x1, y1, x2, y2), detector
    confidence, and 5 landmarks (eyes, nose, mouth corners) as ((x, y), ...)."""

    frame_index: int
    box: tuple[float, float, float, float]
    prob: float
    landmarks: tuple[tuple[float, float], ...] = field(default=(), compare=False)

    @property
    def size(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(min(x2 - x1, y2 - y1))


def square_box(box: Sequence[float], margin: float) -> tuple[int, int, int, int]:
    """The square region ``crop_face`` takes: centred on ``box``, side =
    longer box side x (1 + margin). Integer pixels; may extend past the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    side = max(side, 2.0)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    sx1 = int(round(cx - side / 2.0))
    sy1 = int(round(cy - side / 2.0))
    s = int(round(side))
    return sx1, sy1, sx1 + s, sy1 + s


def crop_face(
    image: np.ndarray,
    box: Sequence[float],
    margin: float,
    size: int,
    interpolation: str = "bicubic",
) -> np.ndarray:
    """Square face crop, RGB uint8 (size, size, 3), from an RGB uint8 (H, W, 3) image.

    The region is :func:`square_box`; parts outside the image are filled by edge
    reflection so the crop's framing never depends on where the face sits in
    the frame. Inference and training both crop with this function.
    """
    h, w = image.shape[:2]
    sx1, sy1, sx2, sy2 = square_box(box, margin)
    pad = max(0, -sx1, -sy1, sx2 - w, sy2 - h)
    src = image
    if pad:
        src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        sx1, sy1, sx2, sy2 = sx1 + pad, sy1 + pad, sx2 + pad, sy2 + pad
    region = src[sy1:sy2, sx1:sx2]
    shrinking = region.shape[0] > size
    interp = cv2.INTER_AREA if shrinking and interpolation in ("bicubic", "bilinear") else _INTERP.get(interpolation, cv2.INTER_CUBIC)
    return np.ascontiguousarray(cv2.resize(region, (size, size), interpolation=interp))


DETAIL_MARGIN, DETAIL_SIZE = 0.3, 160
"""The framing :func:`face_detail` is measured at: the training crop cache's (``training.data``)."""


def face_detail(crop: np.ndarray) -> float:
    """How much fine detail a face crop holds: the standard deviation of the
    Laplacian of the grey crop's inner two thirds (the face, not a reflected
    border). Comparable across inputs only on crops cut by :func:`crop_face`
    at ``DETAIL_MARGIN`` and ``DETAIL_SIZE`` px, the framing the figures in
    ``DecisionSettings.soft_face_detail`` were measured at. A blurred,
    upscaled or heavily smoothed face scores low."""
    g = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    return float(cv2.Laplacian(g[h // 6:h - h // 6, w // 6:w - w // 6], cv2.CV_32F, ksize=1).std())


RULES_OFF: dict = {"min_track_share": 0.0, "small_face_prob": 0.0, "landmark_check": False}
"""``DetectorSettings`` overrides that switch the plausibility rules off (for measuring them):
``dataclasses.replace(DETECTOR, **RULES_OFF)``."""


def landmark_geometry(box: Sequence[float], landmarks: Sequence[Sequence[float]]) -> dict[str, float]:
    """Where MTCNN's 5 landmarks (left eye, right eye, nose, left and right mouth corner; (x, y)
    pixels) sit relative to a box (x1, y1, x2, y2), in the frame of the eye line so that a tilted
    head measures like an upright one:

    - ``eye_dist_frac``: eye distance / box width;
    - ``nose_drop``, ``mouth_drop``: how far the nose lies below the eye line and the mouth-corner
      midpoint below the nose, / box height (both > 0 on a face);
    - ``nose_offset``: the nose's sideways offset from the eyes' midpoint / eye distance (0 frontal,
      about 0.5 or more in profile);
    - ``roll_deg``: the eye line's angle (0 upright; near 180 when the "left" eye is on the right);
    - ``outside``: how far the farthest landmark lies outside the box / box size (0 if all inside).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
    le, re, nose, ml, mr = (np.asarray(p, np.float64) for p in landmarks)
    eye = re - le
    dist = float(np.hypot(*eye))
    u = eye / max(dist, 1e-6)
    v = np.array([-u[1], u[0]])  # perpendicular to the eye line, pointing down the face
    mid_eye, mid_mouth = (le + re) / 2.0, (ml + mr) / 2.0
    nose_v, mouth_v = float((nose - mid_eye) @ v), float((mid_mouth - mid_eye) @ v)
    pts = np.stack([le, re, nose, ml, mr])
    out = np.maximum.reduce([x1 - pts[:, 0], pts[:, 0] - x2, y1 - pts[:, 1], pts[:, 1] - y2])
    return {
        "eye_dist_frac": dist / w,
        "nose_drop": nose_v / h,
        "mouth_drop": (mouth_v - nose_v) / h,
        "nose_offset": float((nose - mid_eye) @ u) / max(dist, 1e-6),
        "roll_deg": float(np.degrees(np.arctan2(eye[1], eye[0]))),
        "outside": max(0.0, float(out.max())) / min(w, h),
    }


def required_prob(size_px: float, settings: DetectorSettings = DETECTOR) -> float:
    """The detector confidence a box of shorter side ``size_px`` (full-resolution pixels) needs:
    ``small_face_prob`` at ``min_face_px``, falling linearly to ``min_face_prob`` at
    ``sure_face_px`` and beyond (never below ``min_face_prob``)."""
    lo, hi = float(settings.min_face_px), float(max(settings.sure_face_px, settings.min_face_px + 1))
    t = min(1.0, max(0.0, (size_px - lo) / (hi - lo)))
    return max(settings.min_face_prob, settings.small_face_prob + t * (settings.min_face_prob - settings.small_face_prob))


def plausible_face(
    box: Sequence[float],
    prob: float,
    landmarks: Sequence[Sequence[float]],
    settings: DetectorSettings = DETECTOR,
) -> bool:
    """Whether one detection (box (x1, y1, x2, y2) in pixels, MTCNN confidence, its 5 landmarks as
    (x, y) pixels) is plausibly a face: confident enough for its size (:func:`required_prob`) and,
    with ``settings.landmark_check``, landmarks laid out as on a face (:func:`landmark_geometry`):
    inside the box, the nose below the eye line and the mouth below the nose, the eyes
    ``eye_dist_frac`` of the box width apart. Without 5 landmarks only the confidence is judged."""
    size = min(box[2] - box[0], box[3] - box[1])
    if prob < required_prob(size, settings):
        return False
    if not settings.landmark_check or len(landmarks) != 5:
        return True
    g = landmark_geometry(box, landmarks)
    lo, hi = settings.eye_dist_frac
    return (g["outside"] <= settings.landmark_slack and g["nose_drop"] > 0 and g["mouth_drop"] > 0
            and lo <= g["eye_dist_frac"] <= hi)


def persistent(n_seen: int, n_frames: int, settings: DetectorSettings = DETECTOR) -> bool:
    """Whether a track seen in ``n_seen`` of ``n_frames`` sampled frames is a face rather than
    detector noise: at least ``min_track_frames`` frames (or all of them, if there are fewer) and,
    in a video, at least ``min_track_share`` of them. An image (one frame) keeps its faces."""
    if n_seen < min(settings.min_track_frames, n_frames):
        return False
    return n_frames <= 1 or n_seen >= settings.min_track_share * n_frames - 1e-9


def load_face_detector(device: str = "cpu", settings: DetectorSettings = DETECTOR) -> "MTCNN":
    """An MTCNN that keeps every face. Its weights ship inside the facenet-pytorch
    wheel, so this never touches the network."""
    from facenet_pytorch import MTCNN

    return MTCNN(
        keep_all=True,
        device=device,
        min_face_size=settings.mtcnn_min_face_size,
        thresholds=list(settings.thresholds),
        post_process=False,
        select_largest=False,
    )


def detect_faces(
    detector: "MTCNN",
    image: np.ndarray,
    frame_index: int = 0,
    settings: DetectorSettings = DETECTOR,
) -> list[FaceBox]:
    """Faces in one RGB uint8 (H, W, 3) frame, in full-resolution pixels.

    MTCNN runs on a copy downscaled to ``settings.detect_max_side``; faces
    smaller than ``min_face_px``, less confident than their size needs or with
    landmarks not laid out as on a face (:func:`plausible_face`) are dropped;
    the most confident ``max_faces_per_frame`` are kept. A frame
    thinner than the smallest face MTCNN looks for has none.
    """
    return detect_faces_batch(detector, [(frame_index, image)], settings)[0]


def _downscaled(image: np.ndarray, settings: DetectorSettings) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, settings.detect_max_side / float(max(h, w)))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return small, scale


def detect_faces_batch(
    detector: "MTCNN",
    frames: Sequence[tuple[int, np.ndarray]],
    settings: DetectorSettings = DETECTOR,
    progress: "Callable[[int, int], None] | None" = None,
) -> list[list[FaceBox]]:
    """:func:`detect_faces` on every frame ``(index, image)``, with frames of one
    size sent to MTCNN together, ``settings.gpu_batch`` at a time. The faces are
    those of one frame at a time (facenet-pytorch runs the same networks and a
    per-image non-maximum suppression on a batch); on a GPU a batch of 16 costs
    little more than one frame, which is launch-bound. ``progress(done, total)``
    is called before each batch."""
    out: list[list[FaceBox]] = [[] for _ in frames]
    groups: dict[tuple[int, ...], list[int]] = {}
    smalls: list[tuple[np.ndarray, float]] = []
    for k, (_, image) in enumerate(frames):
        smalls.append(_downscaled(image, settings))
        # a frame thinner than the smallest face MTCNN looks for is skipped (its pyramid would be empty)
        if min(smalls[k][0].shape[:2]) >= settings.mtcnn_min_face_size:
            groups.setdefault(smalls[k][0].shape, []).append(k)
    step = max(1, settings.gpu_batch)
    done = 0
    for members in groups.values():
        for s in range(0, len(members), step):
            chunk = members[s:s + step]
            if progress is not None:
                progress(done, len(frames))
            done += len(chunk)
            boxes, probs, points = detector.detect(np.stack([smalls[k][0] for k in chunk]), landmarks=True)
            for j, k in enumerate(chunk):
                index, image = frames[k]
                h, w = image.shape[:2]
                faces = _faces_from(boxes[j], probs[j], points[j], smalls[k][1], (0.0, 0.0), (w, h), index, settings)
                faces.sort(key=lambda f: -f.prob)
                out[k] = faces[: settings.max_faces_per_frame]
    return out


def _on_gpu(detector: "MTCNN") -> bool:
    return str(getattr(detector, "device", "cpu")).startswith("cuda")


def _mtcnn(detector: "MTCNN", small: np.ndarray, scale: float, offset: tuple[float, float],
           frame_wh: tuple[int, int], frame_index: int, settings: DetectorSettings) -> list[FaceBox]:
    """Run MTCNN on ``small`` (a region of the frame at ``offset``, resized by
    ``scale``) and return the kept faces in full-frame pixels."""
    boxes, probs, points = detector.detect(small, landmarks=True)
    return _faces_from(boxes, probs, points, scale, offset, frame_wh, frame_index, settings)


_RESIZED: "weakref.WeakKeyDictionary[Any, dict[int, Any]]" = weakref.WeakKeyDictionary()


def _looking_for(detector: "MTCNN", min_face_size: int) -> "MTCNN":
    """``detector``, or a shallow copy of it that looks for faces of at least
    ``min_face_size`` px: the same networks (no weights copied), a shorter image
    pyramid. Made once per detector and size; ``detector`` itself is never changed,
    so analyses running in other threads keep theirs."""
    if getattr(detector, "min_face_size", min_face_size) == min_face_size:
        return detector
    sized = _RESIZED.setdefault(detector, {})
    if min_face_size not in sized:
        other = copy.copy(detector)
        other.min_face_size = min_face_size
        sized[min_face_size] = other
    return sized[min_face_size]


def _faces_from(boxes, probs, points, scale: float, offset: tuple[float, float], frame_wh: tuple[int, int],
                frame_index: int, settings: DetectorSettings) -> list[FaceBox]:
    """MTCNN's output for one image -> the kept faces in full-frame pixels."""
    if boxes is None:  # facenet-pytorch says "no face" with None
        return []
    w, h = frame_wh
    ox, oy = offset
    faces: list[FaceBox] = []
    for b, p, pts in zip(boxes, probs, points):
        if p is None or float(p) < settings.min_face_prob:
            continue
        x1, y1, x2, y2 = (float(v) / scale + o for v, o in zip(b, (ox, oy, ox, oy)))
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(w), x2), min(float(h), y2)
        if min(x2 - x1, y2 - y1) < settings.min_face_px:
            continue
        lm = tuple((float(px) / scale + ox, float(py) / scale + oy) for px, py in np.asarray(pts).reshape(-1, 2))
        # before it can become a face (or a region the keyframe chain keeps searching)
        if not plausible_face((x1, y1, x2, y2), float(p), lm, settings):
            continue
        faces.append(FaceBox(frame_index, (x1, y1, x2, y2), float(p), lm))
    return faces


def detect_near(
    detector: "MTCNN",
    image: np.ndarray,
    previous: Sequence[FaceBox],
    frame_index: int = 0,
    settings: DetectorSettings = DETECTOR,
) -> list[FaceBox]:
    """Faces in one frame, looked for only around the faces of an earlier
    sampled frame: per face, a square of ``roi_scale`` x its box, resized so
    the face is about ``roi_face_px`` wide. Much cheaper than a full-frame pass;
    a face that newly enters is found at the next full pass (see
    :func:`detect_frames`). MTCNN looks there only for faces of at least
    ``roi_min_face_size`` px at that scale (a face that shrank to under about
    half its size since the earlier frame is left to the next full pass).
    Returns full-frame pixels, duplicates merged."""
    h, w = image.shape[:2]
    near = _looking_for(detector, settings.roi_min_face_size)
    found: list[FaceBox] = []
    for face in previous:
        x1, y1, x2, y2 = face.box
        side = max(x2 - x1, y2 - y1)
        half = side * settings.roi_scale / 2.0
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        rx1, ry1 = int(max(0, cx - half)), int(max(0, cy - half))
        rx2, ry2 = int(min(w, cx + half)), int(min(h, cy + half))
        if rx2 - rx1 < settings.min_face_px or ry2 - ry1 < settings.min_face_px:
            continue
        # small faces are enlarged too: MTCNN is surer of a face at ~100 px than at 40
        scale = min(3.0, settings.roi_face_px / float(side))
        roi = image[ry1:ry2, rx1:rx2]
        small = roi if scale == 1.0 else cv2.resize(
            roi, (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
            interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        if min(small.shape[:2]) < settings.roi_min_face_size:
            continue
        found += _mtcnn(near, small, scale, (float(rx1), float(ry1)), (w, h), frame_index, settings)
    found.sort(key=lambda f: -f.prob)
    kept: list[FaceBox] = []
    for f in found:  # neighbouring regions see the same face twice
        if all(box_iou(f.box, k.box) < 0.5 for k in kept):
            kept.append(f)
    return kept[: settings.max_faces_per_frame]


def detect_frames(
    detector: "MTCNN",
    frames: Sequence[tuple[int, np.ndarray]],
    settings: DetectorSettings = DETECTOR,
    progress: "Callable[[int, int], None] | None" = None,
) -> list[list[FaceBox]]:
    """Faces in each of a video's sampled frames ``(index, image)``.

    A full-frame pass (:func:`detect_faces`) on every ``keyframe_every``-th
    frame and wherever the frame before had no face; in between, only around
    the faces of the frame before (:func:`detect_near`), which finds the same
    faces at a fraction of the cost. ``keyframe_every <= 1``: every frame full.
    With the detector on a GPU (and ``gpu_batch > 1``), every frame gets a full
    pass instead, in batches (:func:`detect_faces_batch`): there, one batched
    pass costs less than the keyframe chain's sequence of small ones. The two
    paths can differ at the edges: the full pass finds a face that enters
    between keyframes at once, while the regions enlarge small faces (up to 3x)
    and may keep a 40-60 px face that a full pass at ``detect_max_side`` misses.
    """
    if _on_gpu(detector) and settings.gpu_batch > 1:
        return detect_faces_batch(detector, frames, settings, progress)
    out: list[list[FaceBox]] = []
    prev: list[FaceBox] = []
    for k, (index, image) in enumerate(frames):
        if progress is not None:
            progress(k, len(frames))
        full = settings.keyframe_every <= 1 or k % settings.keyframe_every == 0 or not prev
        faces = detect_faces(detector, image, index, settings) if full else detect_near(
            detector, image, prev, index, settings)
        out.append(faces)
        # Until the next full pass, keep looking where a face was last seen even
        # if this frame missed it (a blink of the detector must not lose a person).
        prev = faces if full else faces + [p for p in prev if all(box_iou(p.box, f.box) < 0.3 for f in faces)]
    return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _affinity(a: Sequence[float], b: Sequence[float], settings: DetectorSettings) -> float:
    """How likely two boxes in nearby sampled frames are the same face; 0 = not."""
    iou = box_iou(a, b)
    if iou >= settings.track_iou:
        return 1.0 + iou
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1])
    dist = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2.0, (a[1] + a[3] - b[1] - b[3]) / 2.0)
    ratio = (a[2] - a[0]) / max(b[2] - b[0], 1e-6)
    if dist < settings.track_center_frac * size and 0.5 < ratio < 2.0:
        return 1.0 - dist / (settings.track_center_frac * size)
    return 0.0


def link_tracks(
    faces_per_frame: Sequence[Sequence[FaceBox]],
    settings: DetectorSettings = DETECTOR,
) -> list[list[FaceBox]]:
    """Link detections across sampled frames into tracks, one per person.

    Greedy matching by affinity (IoU, else centre distance relative to face
    size) against each track's latest box; a track not seen for a while still
    matches, so a face lost in one frame keeps its identity. Tracks that do not
    persist (:func:`persistent`: fewer than ``min_track_frames`` frames or, in a
    video, than ``min_track_share`` of the sampled frames) are dropped as
    detector noise, such as a patterned rug that looks like a face from some
    angles; a person who walks through a quarter of the clip stays.
    Returns tracks ordered by first appearance, then by face size.
    """
    tracks: list[list[FaceBox]] = []
    for faces in faces_per_frame:
        pairs = []
        for ti, track in enumerate(tracks):
            for fi, face in enumerate(faces):
                aff = _affinity(track[-1].box, face.box, settings)
                if aff > 0:
                    pairs.append((aff, ti, fi))
        pairs.sort(key=lambda t: -t[0])
        used_t: set[int] = set()
        used_f: set[int] = set()
        for _, ti, fi in pairs:
            if ti in used_t or fi in used_f:
                continue
            tracks[ti].append(faces[fi])
            used_t.add(ti)
            used_f.add(fi)
        for fi, face in enumerate(faces):
            if fi not in used_f:
                tracks.append([face])
    kept = [t for t in tracks if persistent(len(t), len(faces_per_frame), settings)]
    kept.sort(key=lambda t: (t[0].frame_index, -t[0].size))
    return kept
