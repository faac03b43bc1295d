"""Make the app's example media from a public-domain photo, with no third-party faces.

    python examples/make_examples.py

Source: scikit-image's ``astronaut`` (Eileen Collins, NASA portrait; public
domain), shipped inside the scikit-image wheel, so nothing is downloaded.
Fakes are made by the project's own face-blending
(``deepfake_demo.training.sbi.self_blend``) around MTCNN's 5 landmarks, so they
carry a blending boundary and a colour mismatch like a face swap, without any
other person's face. The videos are slow zooms over the photos (2.4 s, 10 fps,
H.264 through imageio-ffmpeg). Everything is seeded: re-running gives the
same pictures (the H.264 bytes may differ between ffmpeg builds).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SEEDS = {"astronaut_blended_a.jpg": 3, "astronaut_blended_b.jpg": 11}
VIDEO_SIDE = 320
VIDEO_FPS = 10
VIDEO_SECONDS = 2.4


def astronaut() -> np.ndarray:
    """The 512x512 RGB uint8 NASA portrait from scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def landmarks(image: np.ndarray) -> np.ndarray:
    """The most confident face's 5 landmarks (5, 2) in pixels, by the project's detector."""
    from deepfake_demo.faces import detect_faces, load_face_detector

    faces = detect_faces(load_face_detector("cpu"), image)
    if not faces:
        raise SystemExit("no face found in the source photo")
    return np.asarray(max(faces, key=lambda f: f.prob).landmarks, np.float32)


def zoom_clip(image: np.ndarray, centre: tuple[float, float], side: int = VIDEO_SIDE,
              seconds: float = VIDEO_SECONDS, fps: int = VIDEO_FPS) -> list[np.ndarray]:
    """Frames of a slow zoom from the whole photo towards ``centre`` (x, y)."""
    h, w = image.shape[:2]
    n = int(round(seconds * fps))
    frames = []
    for k in range(n):
        s = 1.0 - 0.35 * k / max(1, n - 1)  # window side as a share of the photo
        win = s * min(h, w)
        cx = np.clip(centre[0], win / 2, w - win / 2)
        cy = np.clip(centre[1], win / 2, h - win / 2)
        x1, y1 = cx - win / 2, cy - win / 2
        m = np.array([[side / win, 0, -x1 * side / win], [0, side / win, -y1 * side / win]], np.float64)
        frames.append(cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT))
    return frames


def write_mp4(frames: list[np.ndarray], path: Path, fps: int = VIDEO_FPS) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         quality=None, output_params=["-crf", "24", "-movflags", "+faststart"],
                                         macro_block_size=2, ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def main() -> None:
    from deepfake_demo.training.sbi import self_blend

    real = astronaut()
    lm = landmarks(real)
    out: dict[str, np.ndarray] = {"astronaut_real.jpg": real}
    for name, seed in SEEDS.items():
        blended, _ = self_blend(real, lm, np.random.default_rng(seed))
        out[name] = blended
    for name, img in out.items():
        cv2.imwrite(str(HERE / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    centre = (float(lm[:, 0].mean()), float(lm[:, 1].mean()))
    write_mp4(zoom_clip(real, centre), HERE / "astronaut_real_zoom.mp4")
    write_mp4(zoom_clip(out["astronaut_blended_a.jpg"], centre), HERE / "astronaut_blended_zoom.mp4")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.suffix in (".jpg", ".mp4"))
    print(f"wrote {len(out)} images and 2 videos to {HERE} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
