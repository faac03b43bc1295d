"""Find faces (MTCNN), crop them (the ONE crop function, shared with training),
and link them across frames into tracks, one per person."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from .config import DETECTOR, DetectorSettings

if TYPE_CHECKING:  # pragma: no cover
    from facenet_pytorch import MTCNN

__all__ = [
    "FaceBox",
    "crop_face",
    "square_box",
    "load_face_detector",
    "detect_faces",
    "link_tracks",
    "box_iou",
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
    smaller than ``min_face_px`` or less confident than ``min_face_prob`` are
    dropped; the most confident ``max_faces_per_frame`` are kept.
    """
    h, w = image.shape[:2]
    scale = min(1.0, settings.detect_max_side / float(max(h, w)))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    if min(small.shape[:2]) < settings.mtcnn_min_face_size:
        return []  # thinner than the smallest face MTCNN looks for (and its pyramid would be empty)
    boxes, probs, points = detector.detect(small, landmarks=True)
    if boxes is None:  # facenet-pytorch says "no face" with None
        return []
    faces: list[FaceBox] = []
    for b, p, pts in zip(boxes, probs, points):
        if p is None or float(p) < settings.min_face_prob:
            continue
        x1, y1, x2, y2 = (float(v) / scale for v in b)
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(w), x2), min(float(h), y2)
        if min(x2 - x1, y2 - y1) < settings.min_face_px:
            continue
        lm = tuple((float(px) / scale, float(py) / scale) for px, py in np.asarray(pts).reshape(-1, 2))
        faces.append(FaceBox(frame_index, (x1, y1, x2, y2), float(p), lm))
    faces.sort(key=lambda f: -f.prob)
    return faces[: settings.max_faces_per_frame]


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
    matches, so a face lost in one frame keeps its identity. Tracks seen in
    fewer than ``min_track_frames`` frames are dropped as detector noise (a
    face shown only briefly still counts: two sampled frames suffice).
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
    n_frames = len(faces_per_frame)
    min_len = min(settings.min_track_frames, n_frames)
    kept = [t for t in tracks if len(t) >= min_len]
    kept.sort(key=lambda t: (t[0].frame_index, -t[0].size))
    return kept
