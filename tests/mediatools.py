"""Builders of test inputs made at run time from shared media (never stored)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

_MATRIX = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}


def set_mp4_rotation(path: Path, degrees: int) -> int:
    """Rewrite the display matrix of every video track header (tkhd) in an MP4,
    as phones do for portrait clips. Returns how many tracks were patched."""
    data = bytearray(path.read_bytes())
    a, b, c, d = _MATRIX[degrees]
    i, patched = 0, 0
    while (i := data.find(b"tkhd", i)) >= 0:
        off = i + 8 + (32 if data[i + 4] == 1 else 20) + 16
        w, h = struct.unpack(">II", data[off + 36:off + 44])
        if w and h:
            struct.pack_into(">9i", data, off, a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30)
            patched += 1
        i += 4
    path.write_bytes(bytes(data))
    return patched


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write RGB frames with OpenCV's mp4v (MP4) or MJPG (AVI) writer."""
    h, w = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    vw = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert vw.isOpened(), "OpenCV cannot write test videos here"
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def reencode_h264(src: Path, dst: Path, crf: int, seconds: float = 2.0) -> Path:
    """The first ``seconds`` of ``src`` re-encoded with libx264 at ``crf`` (imageio-ffmpeg's ffmpeg, default
    preset), audio dropped: what a re-upload does to a video."""
    import subprocess

    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-t", str(seconds), "-an",
                    "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid grayscale PNG of side x side (mostly zeros: small on disk)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    row = b"\x00" * (side + 1)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path
