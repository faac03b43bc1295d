"""Self-Blended Images (Shiohara & Yamasaki, CVPR 2022), from 5 MTCNN landmarks or a dense face outline.

A real face is blended with a slightly colour- and geometry-transformed copy
of itself through a soft mask around the face. The result shows the traces a
face swap leaves (a blending boundary, a colour mismatch, a resampled inner
face) without any identity change, so a detector trained on it learns the
boundary rather than one generator's fingerprints.

The paper builds the mask from 81 dlib landmarks; MTCNN gives 5 (eyes, nose,
mouth corners), so the hull here is built from points extrapolated from them
(brows/forehead above the eyes, cheeks, jaw and chin below the mouth), then
randomly deformed, dilated or eroded, and blurred twice. With ``--sbi-landmarks mesh`` the hull is
instead the 36-point face oval of MediaPipe's 468-point mesh (:mod:`.mesh`), passed after the 5
points as a (41, 2) array; a crop without a mesh (NaN outline) falls back to the 5 points.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["face_hull_mask", "self_blend", "hull_points", "blend_landmarks"]


def _hull_points(lm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points around the face (K, 2) in pixels from 5 landmarks (5, 2)."""
    le, re_, nose, lm_, rm = (lm[i].astype(np.float64) for i in range(5))
    eye_c = (le + re_) / 2.0
    mouth_c = (lm_ + rm) / 2.0
    down = mouth_c - eye_c  # eyes -> mouth: the face's vertical axis
    dist = float(np.hypot(*down)) or 1.0
    down = down / dist
    right = re_ - le
    eye_w = float(np.hypot(*right)) or 1.0
    right = right / eye_w
    # extents in units of the eye-mouth distance, jittered per sample
    up_k = rng.uniform(0.55, 0.95)     # brows / forehead above the eyes
    chin_k = rng.uniform(0.45, 0.8)    # chin below the mouth
    side_k = rng.uniform(0.35, 0.65)   # cheeks beyond the eyes (x eye width)
    jaw_k = rng.uniform(0.15, 0.45)    # jaw beyond the mouth corners
    pts = [
        le - right * side_k * eye_w - down * up_k * dist * 0.6,
        re_ + right * side_k * eye_w - down * up_k * dist * 0.6,
        eye_c - down * up_k * dist,
        le - right * side_k * eye_w + down * dist * 0.3,
        re_ + right * side_k * eye_w + down * dist * 0.3,
        lm_ - right * jaw_k * eye_w + down * chin_k * dist * 0.4,
        rm + right * jaw_k * eye_w + down * chin_k * dist * 0.4,
        mouth_c + down * chin_k * dist,
        nose,
    ]
    return np.asarray(pts, np.float32)


def _outline_points(outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dense face outline (K, 2), jittered as the 5-point hull is: scaled about its centre by
    0.9..1.05 and with the forehead edge (the top third) raised or lowered by up to 8 % of the height."""
    pts = outline.astype(np.float64)
    c = pts.mean(axis=0)
    pts = c + (pts - c) * rng.uniform(0.9, 1.05)
    top, bottom = pts[:, 1].min(), pts[:, 1].max()
    upper = pts[:, 1] < top + (bottom - top) / 3
    pts[upper, 1] -= rng.uniform(-0.04, 0.08) * (bottom - top)
    return pts.astype(np.float32)


def hull_points(landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The points the mask's hull is built from: a dense outline when ``landmarks`` carries a found
    one after its 5 points ((5 + K, 2), K > 0, finite), else points extrapolated from the 5."""
    lm = np.asarray(landmarks, np.float32).reshape(-1, 2)
    if len(lm) > 5 and np.isfinite(lm[5:]).all():
        return _outline_points(lm[5:], rng)
    return _hull_points(lm[:5], rng)


def blend_landmarks(landmarks: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """The landmarks one self-blend is cut from: as given (``5point``, ``mesh``), or with ``mixed``
    the 5 points alone or the 5 points and outline at even odds, so the model sees both mask shapes
    (one draw from ``rng`` only in that mode)."""
    if mode == "mixed" and len(landmarks) > 5 and rng.random() < 0.5:
        return landmarks[:5]
    return landmarks


def _elastic(mask: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Smooth random displacement of a (H, W) float mask, ``amount`` x side pixels."""
    h, w = mask.shape
    grid = 4
    dx = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    a = amount * max(h, w)
    return cv2.remap(mask, xs + dx * a, ys + dy * a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _odd(k: float) -> int:
    k = int(round(k))
    return max(3, k + (k % 2 == 0))


def face_hull_mask(shape: tuple[int, int], landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blurred face-region mask (H, W) float32 in [0, 1] from 5 landmarks (5, 2) pixels, or 5 landmarks
    and a face outline ((5 + K, 2), see :func:`hull_points`).

    Convex hull of the face points (:func:`hull_points`), or the ellipse that fits them,
    elastically deformed, dilated/eroded by a random kernel, then blurred twice
    (the second blur only softens the inside edge, as in the paper).
    """
    h, w = shape
    pts = hull_points(landmarks, rng)
    mask = np.zeros((h, w), np.float32)
    if rng.random() < 0.5:
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 1.0)
    else:
        (cx, cy), (ax1, ax2), ang = cv2.fitEllipse(pts)
        cv2.ellipse(mask, ((cx, cy), (ax1, ax2), ang), 1.0, -1)
    side = float(max(h, w))
    mask = _elastic(mask, rng, rng.uniform(0.0, 0.03))
    k = _odd(side * rng.uniform(0.01, 0.06))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    if mask.max() <= 0:  # eroded away on a tiny face: fall back to the plain hull
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 1.0)
    k1 = _odd(side * rng.uniform(0.05, 0.15))
    blurred = cv2.GaussianBlur(mask, (k1, k1), 0)
    blurred = blurred / max(float(blurred.max()), 1e-6)
    inner = blurred < 1.0
    k2 = _odd(side * rng.uniform(0.03, 0.1))
    blurred2 = cv2.GaussianBlur(blurred, (k2, k2), 0)
    blurred[inner] = blurred2[inner]
    return np.clip(blurred, 0.0, 1.0).astype(np.float32)


def _colour_transform(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random RGB shift, hue/saturation/value shift, brightness/contrast. float32 0..255."""
    out = img.astype(np.float32)
    out += rng.uniform(-20, 20, 3).astype(np.float32)
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.85, 1.15), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    c = rng.uniform(0.85, 1.15)
    b = rng.uniform(-15, 15)
    out = (out - out.mean()) * c + out.mean() + b
    return np.clip(out, 0, 255)


def _geometry_transform(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small random scale (0.95..1.05 about the centre) and shift (<= 3 % of the side)."""
    h, w = img.shape[:2]
    s = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03, 2) * np.array([w, h])
    m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _sharpen_or_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        blur = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.5))
        return np.clip(img + rng.uniform(0.3, 1.0) * (img - blur), 0, 255)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))


def self_blend(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Make a self-blended fake from one real face.

    image: RGB uint8 (H, W, 3) face crop; landmarks: (5, 2) float pixels in that
    image (left eye, right eye, nose, left mouth corner, right mouth corner), optionally followed by
    a face outline ((5 + K, 2), :func:`hull_points`).
    Returns (blended RGB uint8 (H, W, 3), mask (H, W) float32 in [0, 1]): the
    weight of the transformed source at each pixel; where the mask is 0 the
    output equals the input exactly.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"self_blend wants RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    mask = face_hull_mask((h, w), landmarks, rng)
    source = image.astype(np.float32)
    for step in rng.permutation(3):
        if step == 0:
            source = _colour_transform(source, rng)
        elif step == 1:
            source = _geometry_transform(source, rng)
        else:
            source = _sharpen_or_blur(source, rng)
    # the paper blends at a random strength: a partly transparent face is a fake too
    mask = mask * float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))
    m3 = mask[..., None]
    out = source * m3 + image.astype(np.float32) * (1.0 - m3)
    out = np.where(m3 > 0, np.clip(np.round(out), 0, 255), image).astype(np.uint8)
    return out, mask.astype(np.float32)
