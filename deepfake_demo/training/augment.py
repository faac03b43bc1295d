"""Augmentations that mirror what real uploads do to a face: re-framing,
flips, colour shifts, grayscale, blur, noise, downscaling and JPEG
recompression. Pure functions on RGB uint8 (H, W, 3) arrays."""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["augment", "h264", "jpeg", "mild_soften", "recompress", "resize_to", "soften"]


def resize_to(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square crop to (size, size, 3); INTER_AREA when shrinking, as
    :func:`deepfake_demo.faces.crop_face` does."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=interp))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (RGB uint8 in and out)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264(image: np.ndarray, crf: int) -> np.ndarray:
    """Encode as one H.264 frame (libx264, yuv420p, constant rate factor ``crf``) and decode it again: RGB
    uint8 in and out, same shape. Deterministic (one encoder thread). PyAV, as media.video_qp uses."""
    from fractions import Fraction

    import av

    h, w = image.shape[:2]
    even = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p wants even sides
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = even.shape[1], even.shape[0], "yuv420p", Fraction(1, 25)
    enc.options = {"crf": str(int(crf)), "preset": "veryfast", "tune": "zerolatency", "threads": "1"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24").reformat(format="yuv420p")
    dec = av.CodecContext.create("h264", "r")
    out = []
    for packet in list(enc.encode(frame)) + list(enc.encode(None)):
        out += dec.decode(packet)
    out += dec.decode(None)
    if not out:
        raise RuntimeError("H.264 round trip gave no frame")
    return np.ascontiguousarray(out[0].to_ndarray(format="rgb24")[:h, :w])


def _reframe(image: np.ndarray, rng: np.random.Generator, max_shift: float, scale_range: tuple[float, float]) -> np.ndarray:
    """Random zoom and shift of the crop: detector boxes jitter between frames
    and between the shared crops' sources."""
    h, w = image.shape[:2]
    s = rng.uniform(*scale_range)
    tx, ty = rng.uniform(-max_shift, max_shift, 2) * np.array([w, h])
    m = np.array([[s, 0, (1 - s) * w / 2 + tx], [0, s, (1 - s) * h / 2 + ty]], np.float32)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _lose_detail(image: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float],
                 scale: tuple[float, float]) -> np.ndarray:
    """Half the time a Gaussian blur of sigma drawn from ``sigma`` (px at 160 px, scaled to the
    crop), else a downscale to a share drawn from ``scale`` of the crop's width and back."""
    h = image.shape[0]
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(*sigma) * h / 160.0)
    small = max(16, int(h * rng.uniform(*scale)))
    return cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (h, h),
                      interpolation=cv2.INTER_CUBIC)


def soften(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A strong loss of detail, beyond :func:`augment`'s mild blur and downscale:
    a Gaussian blur of sigma 1.5-3 px at 160 px, or a face only 20-40 % as wide
    as the crop (a small face in a frame, heavy video compression). The members
    shipped before it had never seen faces this soft and called many blurred real
    faces FAKE (notes/experiments/2026-11-23-robustness/README.md; what softening
    changed: notes/experiments/2026-11-23-soften-finetune/README.md). Applied to real and
    fake samples alike, it teaches that such a face carries little evidence
    either way, instead of a FAKE."""
    return _lose_detail(image, rng, (1.5, 3.0), (0.2, 0.4))


def mild_soften(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A mild loss of detail, the kind that separates the real faces the shipped
    pair calls FAKE from those it calls REAL (median face detail 8.9 against 11.6 on
    faces/test, notes/experiments/2026-12-07-false-alarms/README.md): a Gaussian blur
    of sigma 0.6-1.4 px at 160 px, or a downscale to 45-75 % of the crop and back.
    In training the fakes are the softer side (median detail 7.1 against 8.4 on DFDC,
    8.9-11.2 by method against 10.0 on FF++), so a detector may learn "soft, so fake"; given to real
    samples only (``--soften-real-frac``), it moves the reals' detail towards the fakes'
    to take that shortcut away. Its one run (a fifth of the reals) did not lower the false
    alarms on faces/test and was not shipped (notes/experiments/2026-12-07-soften-reals/README.md)."""
    return _lose_detail(image, rng, (0.6, 1.4), (0.45, 0.75))


def recompress(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One more H.264 encode (crf 18-30, FF++'s c23 in the middle): the pass FF++'s fakes went through
    after manipulation and their originals did not, so that in training "one encode more" is not "fake".
    Given to real samples only (``--recompress-real-frac``); the experiment that asks whether it takes
    that shortcut away: notes/experiments/2026-12-07-recompress-reals/README.md."""
    return h264(image, int(rng.integers(18, 31)))


def heavy_recompress(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One more H.264 encode at a crf drawn from 28-42: from a typical re-upload to beyond FF++'s c40.
    Re-encoded at crf 40, 44 % of faces/test's fakes pass the shipped pair as REAL (9 % as they are;
    notes/logs/robustness_xception_224.json). Given to real and fake samples alike (``--recompress-frac``),
    so that "heavily compressed" says nothing about the label and the evidence that survives it is
    learned; the experiment: notes/experiments/2026-12-07-recompress-both/README.md."""
    return h264(image, int(rng.integers(28, 43)))


def augment(image: np.ndarray, rng: np.random.Generator, size: int, strength: float = 1.0) -> np.ndarray:
    """One random augmentation of a face crop, resized to (size, size, 3) uint8.

    Each operation fires with a probability scaled by ``strength`` (0 = only
    the resize). Order follows an upload's life: framing, camera/colour, then
    resampling and compression last.
    """
    p = float(np.clip(strength, 0.0, 1.0))
    img = image
    if rng.random() < 0.7 * p:
        img = _reframe(img, rng, 0.06, (0.9, 1.12))
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img.astype(np.float32)
    if rng.random() < 0.5 * p:  # brightness / contrast / per-channel gain
        img = (img - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
        img = img * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    if rng.random() < 0.3 * p:  # saturation
        g = img.mean(axis=2, keepdims=True)
        img = g + (img - g) * rng.uniform(0.6, 1.3)
    if rng.random() < 0.05 * p:
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.2 * p:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.5))
    if rng.random() < 0.3 * p:  # downscale then back up: low-resolution uploads
        h = img.shape[0]
        small = max(24, int(h * rng.uniform(0.35, 0.8)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (h, h),
                         interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.15 * p:
        noise = rng.normal(0, rng.uniform(2, 8), img.shape).astype(np.float32)
        img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    img = resize_to(np.ascontiguousarray(img), size)
    if rng.random() < 0.5 * p:  # compression happens at the delivered size
        img = jpeg(img, int(rng.integers(35, 96)))
    return np.ascontiguousarray(img)
