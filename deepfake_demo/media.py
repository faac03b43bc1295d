"""Load an image or a video and sample frames. From here on every frame is
RGB uint8, shape (H, W, 3); BGR exists only inside the OpenCV calls."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import IMAGE_EXTENSIONS, LIMITS, VIDEO_EXTENSIONS, Limits

__all__ = [
    "MediaError", "Frame", "Media", "load_media", "load_image", "load_video", "array_media",
    "to_rgb_uint8", "sample_indices", "kind_of", "video_qp",
]


class MediaError(ValueError):
    """The input cannot be analysed; the message says why, in plain words."""


@dataclass(frozen=True)
class Frame:
    """One analysed frame: ``image`` is RGB uint8 (H, W, 3)."""

    index: int
    time_s: float
    image: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class Media:
    """Decoded input: its kind, geometry and the sampled frames."""

    kind: str  # "image" | "video"
    width: int
    height: int
    frames: tuple[Frame, ...]
    fps: float | None = None
    frame_count: int | None = None
    duration_s: float | None = None
    warnings: tuple[str, ...] = ()
    # how hard the video stream was compressed (:func:`video_qp`); None: an image, or not H.264
    video_qp: float | None = None


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Normalise an array image to RGB uint8 (H, W, 3).

    Accepts (H, W) grayscale, (H, W, 1|3|4), uint8/uint16/float in [0, 1]. Alpha is
    composited over white (a transparent background is not a black one).
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise MediaError(f"expected an image array of shape (H, W[, 1|3|4]), got {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.integer):
        a = np.clip(a, 0, 255).astype(np.uint8)
    else:
        raise MediaError(f"unsupported image array dtype {a.dtype}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = (a[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a)


def _check_file(path: Path, limits: Limits) -> None:
    if not path.exists():
        raise MediaError(f"file not found: {path}")
    if not path.is_file():
        raise MediaError(f"not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise MediaError(f"file is not readable (permission denied): {path}")
    size = path.stat().st_size
    if size == 0:
        raise MediaError("file is empty (0 bytes)")
    if size > limits.max_file_mb * 1024 * 1024:
        raise MediaError(f"file is {size / 2**20:.0f} MB, above the {limits.max_file_mb:.0f} MB limit")


def _check_image_size(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_image_pixels:
        raise MediaError(
            f"image is too large: {width}x{height} ({width * height / 1e6:.0f} MP), above the "
            f"{limits.max_image_pixels / 1e6:.0f} MP limit; downscale it first"
        )
    if min(width, height) < limits.min_image_side:
        raise MediaError(
            f"image is {width}x{height}, too small to hold a face (needs at least "
            f"{limits.min_image_side} px on each side)"
        )


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit integer pixels: full-range data is scaled down; 8-bit values
        # stored in a wide container (max <= 255) are taken as they are.
        a = np.asarray(img).astype(np.int64)
        top = 65535 if a.max(initial=0) > 255 else 255
        return to_rgb_uint8((np.clip(a, 0, top) * 255 // top).astype(np.uint8))
    if img.mode == "F":
        return to_rgb_uint8(np.asarray(img, dtype=np.float32) / 255.0)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return to_rgb_uint8(np.asarray(img.convert("RGBA")))
    return to_rgb_uint8(np.asarray(img.convert("RGB")))


def load_image(path: str | os.PathLike, limits: Limits = LIMITS) -> Media:
    """Decode an image file (JPEG, PNG, WebP, BMP, TIFF, GIF's first frame) with its
    EXIF orientation applied."""
    p = Path(path)
    _check_file(p, limits)
    try:
        with Image.open(p) as img:
            _check_image_size(img.width, img.height, limits)  # header only: no decode yet
            img = ImageOps.exif_transpose(img)
            rgb = _pil_to_rgb(img)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        # PIL refuses headers over twice its own limit inside Image.open, before our size check can
        # run: say it in our words (found by `python -m deepfake_demo.stress fuzz`)
        m = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" (its header declares {int(m.group(1)) / 1e6:.0f} MP)" if m else ""
        raise MediaError(f"image is too large{size}, above the {limits.max_image_pixels / 1e6:.0f} MP limit; "
                         "downscale it first") from None
    except UnidentifiedImageError:
        raise MediaError("not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"image is corrupt or truncated: {exc}") from None
    h, w = rgb.shape[:2]
    return Media("image", w, h, (Frame(0, 0.0, rgb),))


def array_media(array: np.ndarray, limits: Limits = LIMITS) -> Media:
    """Wrap an in-memory image array (see :func:`to_rgb_uint8`) as Media."""
    a = np.asarray(array)
    if a.ndim < 2:
        raise MediaError(f"expected an image array, got shape {a.shape}")
    _check_image_size(a.shape[1], a.shape[0], limits)
    rgb = to_rgb_uint8(a)
    return Media("image", rgb.shape[1], rgb.shape[0], (Frame(0, 0.0, rgb),))


def sample_indices(frame_count: int, n: int) -> list[int]:
    """``n`` frame indices spread evenly over ``[0, frame_count)``, centred in
    their slots so the first and last seconds weigh like the rest."""
    if frame_count <= 0 or n <= 0:
        return []
    n = min(n, frame_count)
    idx = np.floor((np.arange(n) + 0.5) * frame_count / n).astype(int)
    return sorted(set(int(i) for i in np.clip(idx, 0, frame_count - 1)))


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _rotation(cap: cv2.VideoCapture) -> int:
    meta = getattr(cv2, "CAP_PROP_ORIENTATION_META", None)
    if meta is None:
        return 0
    deg = int(round(cap.get(meta) or 0)) % 360
    return deg if deg in (90, 180, 270) else 0


_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def load_video(
    path: str | os.PathLike,
    n_frames: int = 32,
    limits: Limits = LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> Media:
    """Decode ``n_frames`` evenly spaced frames.

    Frames are skipped with ``grab()`` and only the sampled ones are decoded with
    ``retrieve()``: seeking with ``CAP_PROP_POS_FRAMES`` is far slower (notes/performance.md,
    "What is already there").
    Rotation metadata is applied so portrait clips come out upright.
    """
    p = Path(path)
    _check_file(p, limits)
    if n_frames < 1:
        raise MediaError("frames to analyse must be at least 1")
    if n_frames > limits.max_frames_analyzed:
        raise MediaError(f"at most {limits.max_frames_analyzed} frames can be analysed, {n_frames} were asked")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise MediaError("not a readable video (the file could not be opened or decoded)")
        auto = getattr(cv2, "CAP_PROP_ORIENTATION_AUTO", None)
        # We rotate ourselves, so the result does not depend on the OpenCV build's default.
        manual_rotation = _rotation(cap)
        if auto is not None:
            cap.set(auto, 0)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if w <= 0 or h <= 0:
            raise MediaError("not a readable video (no video stream found)")
        if min(w, h) < limits.min_image_side:
            raise MediaError(f"video is {w}x{h}, too small to hold a face (needs at least "
                             f"{limits.min_image_side} px on each side)")
        if max(w, h) > limits.max_video_side:
            raise MediaError(f"video is {w}x{h}, above the {limits.max_video_side} px limit per side")
        if not (0 < fps < 1000):
            fps = 25.0  # unknown rate: times are then approximate
        if count <= 0:
            raise MediaError("video has no frames (or its length cannot be read)")
        if count > limits.max_video_frames:
            raise MediaError(f"video has {count} frames, above the {limits.max_video_frames} frame limit")
        duration = count / fps
        if duration > limits.max_video_duration_s:
            raise MediaError(
                f"video is {_duration(duration)} long, above the {_duration(limits.max_video_duration_s)} limit; "
                "trim it first"
            )
        wanted = sample_indices(count, n_frames)
        need_mb = len(wanted) * w * h * 3 / 2**20
        if need_mb > limits.max_decoded_mb:
            fit = max(1, int(limits.max_decoded_mb * 2**20 // (w * h * 3)))
            raise MediaError(
                f"{len(wanted)} frames of {w}x{h} would need {need_mb:.0f} MB of memory; analyse at most {fit} frames"
            )
        frames, grabbed = _read_sampled(cap, wanted, manual_rotation, fps, progress)
    finally:
        cap.release()
    warnings: tuple[str, ...] = ()
    if grabbed <= wanted[-1] and grabbed > 0:
        # The stream ends before its header says: spread the samples over what is really there.
        cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
        try:
            if auto is not None:
                cap.set(auto, 0)
            frames, _ = _read_sampled(cap, sample_indices(grabbed, n_frames), manual_rotation, fps, progress)
        finally:
            cap.release()
        warnings = (f"the video stops decoding at frame {grabbed} of {count} ({grabbed / fps:.1f} of "
                    f"{duration:.1f} s): truncated or corrupt; only that part was analysed",)
    if not frames:
        raise MediaError("no frame of the video could be decoded (truncated or corrupt file)")
    fh, fw = frames[0].image.shape[:2]
    return Media("video", fw, fh, tuple(frames), fps=fps, frame_count=count, duration_s=duration,
                 warnings=warnings, video_qp=video_qp(p))


_H264, _B_FRAME = 1, 3  # AV_VIDEO_ENC_PARAMS_H264 (the quantiser scale is H.264's, 0-51); AV_PICTURE_TYPE_B


def video_qp(path: str | os.PathLike, max_frames: int = 16) -> float | None:
    """How hard an H.264 stream was compressed: the median over its first ``max_frames`` I and P frames of
    each frame's mean macroblock quantiser (QP, 0-51; each +6 halves the precision), read from the decoder
    (PyAV, FFmpeg's ``export_side_data venc_params``). B frames are left out: encoders quantise them
    coarser by design. For x264 it reads a little under the crf: re-encoded at crf 23 the 13 shared videos
    read 17-25, at crf 40 28-42 (static footage lower; notes/scripts/video_qp.py). None when the stream is not H.264 (other codecs' scales differ and were not measured) or cannot
    be read so; the video is still analysed."""
    import av  # only here: images never need it

    values: list[float] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                return None
            stream.codec_context.options = {"export_side_data": "venc_params"}
            stream.codec_context.skip_frame = "NONREF"  # frames nothing refers to are B frames: not decoded
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i >= 8 * max_frames or len(values) >= max_frames:
                    break
                params = frame.side_data.get(av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS)
                if params is None or params.codec_type != _H264 or int(frame.pict_type) == _B_FRAME:
                    continue
                values.append(float(np.mean(params.qp_map())))
    except (av.FFmpegError, ValueError):  # a stream PyAV cannot walk: OpenCV already decoded what is analysed
        return None
    return float(np.median(values)) if values else None


def _read_sampled(
    cap: cv2.VideoCapture,
    wanted: list[int],
    rotation: int,
    fps: float,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[Frame], int]:
    """Decode the ``wanted`` frames; returns them and how many frames could be grabbed."""
    targets = set(wanted)
    last = wanted[-1] if wanted else -1
    frames: list[Frame] = []
    grabbed = 0
    for i in range(last + 1):
        if not cap.grab():
            break  # truncated: keep what was decoded
        grabbed += 1
        if i not in targets:
            continue
        ok, bgr = cap.retrieve()
        if not ok or bgr is None:
            continue
        if rotation:
            bgr = cv2.rotate(bgr, _ROTATE[rotation])
        frames.append(Frame(i, i / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        if progress is not None:
            progress(len(frames), len(wanted))
    return frames, grabbed


def kind_of(path: str | os.PathLike, sniff: bool = True) -> str | None:
    """``"image"`` or ``"video"`` by file extension. Unknown extensions are
    sniffed by the image decoder's header parser when ``sniff``, else None."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if not sniff:
        return None
    try:
        with Image.open(path):
            return "image"
    except (OSError, SyntaxError, ValueError):
        return "video"


def load_media(
    source: str | os.PathLike | np.ndarray,
    n_frames: int = 32,
    limits: Limits = LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> Media:
    """Load a path (image or video) or an RGB array into :class:`Media`."""
    if isinstance(source, np.ndarray):
        return array_media(source, limits)
    p = Path(source)
    if p.exists() and p.is_file() and kind_of(p) == "image":
        return load_image(p, limits)
    if p.exists() and p.is_file():
        return load_video(p, n_frames, limits, progress)
    _check_file(p, limits)  # raises with the reason
    raise MediaError(f"cannot read {p}")
