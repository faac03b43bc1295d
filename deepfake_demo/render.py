"""Pictures made from a Report: annotated frames, face panels, heatmap files.
Read-only over the Report: it draws what the Report says (each face's verdict
included) and decides nothing; used by the CLI and the app."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from .aggregate import Verdict
from .explain import overlay_crop, overlay_frame
from .report import FaceObservation, FaceTrack, Report

__all__ = ["VERDICT_RGB", "verdict_hex", "contrast_with_white", "file_stem", "observations_by_frame", "annotate_frame", "face_panel",
           "write_heatmaps", "annotated_frames", "frame_durations", "write_annotated_video", "probability_figure", "face_panel_grid"]

VERDICT_RGB = {
    Verdict.FAKE: (185, 28, 28),
    Verdict.REAL: (21, 128, 61),
    Verdict.UNCERTAIN: (180, 83, 9),
    Verdict.NO_FACE: (71, 85, 105),
    Verdict.ERROR: (71, 85, 105),
}
"""The colour of each verdict, RGB 0..255: boxes here, badges and cards in the app. Dark enough that
white text on it passes WCAG AA (contrast >= 4.5:1; :func:`contrast_with_white`)."""


def contrast_with_white(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio of white text on the colour ``rgb`` (0..255)."""
    def lin(c: float) -> float:
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def verdict_hex(verdict: str) -> str:
    """:data:`VERDICT_RGB` as a CSS colour ("#rrggbb"); grey for anything else."""
    return "#{:02x}{:02x}{:02x}".format(*VERDICT_RGB.get(verdict, VERDICT_RGB[Verdict.ERROR]))


def file_stem(report: Report, max_len: int = 60) -> str:
    """A file-name-safe stem for the files made from a report: the input's stem with
    anything but word characters, dots and dashes replaced, at most ``max_len`` long
    ("array" for an in-memory input)."""
    stem = Path(report.path).stem if report.path else "array"
    return re.sub(r"[^\w.-]+", "_", stem)[:max_len] or "array"


def observations_by_frame(report: Report) -> dict[int, list[tuple[FaceTrack, FaceObservation]]]:
    """frame index -> the (track, observation) pairs seen in it."""
    out: dict[int, list[tuple[FaceTrack, FaceObservation]]] = {f.index: [] for f in report.frames}
    for t in report.faces:
        for o in t.observations:
            out.setdefault(o.frame_index, []).append((t, o))
    return out


def annotate_frame(report: Report, frame_index: int, opacity: float = 0.5, heatmap: bool = True) -> np.ndarray:
    """The analysed frame with each face's Grad-CAM, box and score drawn on it.

    Each face's map is weighted by its fake probability, so heat means
    suspicion: a face the models call real stays nearly clear, while the crop
    panels (:func:`face_panel`) show every map at full contrast for inspection.
    Returns RGB uint8 (H, W, 3)."""
    frame = next(f for f in report.frames if f.index == frame_index)
    pairs = observations_by_frame(report).get(frame_index, [])
    img = frame.image
    if heatmap:
        img = overlay_frame(img, [(o.cam * o.fake_probability, o.crop_box) for _, o in pairs if o.cam is not None],
                            opacity)
    else:
        img = img.copy()
    h, w = img.shape[:2]
    thick = max(2, round(max(h, w) / 500))
    scale = max(0.5, max(h, w) / 1400)
    for t, o in pairs:
        colour = VERDICT_RGB[o.verdict]
        x1, y1, x2, y2 = (int(round(v)) for v in o.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        label = f"face {t.id}: {o.fake_probability:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 > 0 else min(h - 1, y2 + th + base + 4)
        cv2.rectangle(img, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), colour, -1)
        cv2.putText(img, label, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return img


def face_panel(obs: FaceObservation, opacity: float = 0.5) -> np.ndarray:
    """The face crop, then its ensemble heatmap, then each member's, side by side.
    Returns RGB uint8 (S, S * (2 + members), 3); just the crop without CAMs."""
    if obs.crop is None:
        raise ValueError("this report was made without heatmaps")
    tiles = [obs.crop]
    if obs.cam is not None:
        tiles.append(overlay_crop(obs.crop, obs.cam, opacity))
        tiles.extend(overlay_crop(obs.crop, c, opacity) for c in obs.model_cams.values())
    return np.concatenate(tiles, axis=1)


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")


def write_heatmaps(report: Report, out_dir: str | os.PathLike, opacity: float = 0.5) -> list[Path]:
    """Write one annotated frame per analysed frame with faces, and one face
    panel per face and frame, as JPEG files into ``out_dir``. Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(report)
    written: list[Path] = []
    for idx, pairs in observations_by_frame(report).items():
        if not pairs:
            continue
        p = out / f"{stem}_frame{idx:06d}.jpg"
        _write_jpeg(p, annotate_frame(report, idx, opacity))
        written.append(p)
        for t, o in pairs:
            if o.crop is None:
                continue
            q = out / f"{stem}_face{t.id}_frame{idx:06d}.jpg"
            _write_jpeg(q, face_panel(o, opacity))
            written.append(q)
    return written


# --- video and plot (added for the app; pure: Report in, file / figure out) ---

def _even(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side``; crop to even sides (H.264 yuv420p needs them)."""
    h, w = img.shape[:2]
    s = min(1.0, max_side / float(max(h, w)))
    if s < 1.0:
        img = cv2.resize(img, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[: h - h % 2, : w - w % 2])


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    h, w = out.shape[:2]
    scale = max(0.45, max(h, w) / 1600)
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(out, (0, h - th - base - 8), (tw + 10, h), (0, 0, 0), -1)
    cv2.putText(out, text, (5, h - base - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def annotated_frames(report: Report, opacity: float = 0.5, heatmap: bool = True,
                     max_side: int = 960, frame_indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Every analysed frame (or those of ``frame_indices``), annotated (see :func:`annotate_frame`)
    and, for a video, captioned with its time and index; downscaled to ``max_side`` with even sides.
    RGB uint8 (H, W, 3) each."""
    out = []
    cams = heatmap and any(o.cam is not None for t in report.faces for o in t.observations)
    wanted = None if frame_indices is None else set(frame_indices)
    for f in report.frames:
        if wanted is not None and f.index not in wanted:
            continue
        img = _even(annotate_frame(report, f.index, opacity, cams), max_side)
        out.append(_caption(img, f"t={f.time_s:.2f} s  frame {f.index}") if report.kind == "video" else img)
    return out


def frame_durations(report: Report, seconds_per_frame: float | None = None) -> list[float]:
    """How long each analysed frame stays on screen in the annotated video: until the next analysed
    frame's time in the source (the last one: the mean gap, or what is left of the source's duration),
    so the video lasts as long as the input and each frame shows at its moment; ``seconds_per_frame``
    instead gives every frame the same time (an image, or frames without times)."""
    times = [f.time_s for f in report.frames]
    n = len(times)
    if seconds_per_frame is not None or n == 0 or any(t is None for t in times):
        return [float(seconds_per_frame or 0.5)] * n
    gaps = [max(0.0, b - a) for a, b in zip(times, times[1:])]
    mean_gap = sum(gaps) / len(gaps) if gaps else 0.5
    rest = (report.duration_s or 0.0) - times[-1]
    last = rest if 0.0 < rest <= 2 * max(mean_gap, 0.04) else mean_gap
    return [max(0.04, g) for g in gaps + [last or 0.5]]


def write_annotated_video(report: Report, out_path: str | os.PathLike, opacity: float = 0.5,
                          seconds_per_frame: float | None = None, max_side: int = 960,
                          frames: Sequence[np.ndarray] | None = None,
                          progress: Callable[[int, int], Any] | None = None) -> Path:
    """Write the analysed frames, annotated, as a video.

    Only the sampled frames are in the Report, so this is a slideshow of what was analysed, not a
    re-encode of the input: each frame is held until the next analysed frame's time in the source
    (:func:`frame_durations`), so it plays as long as the input and every frame carries its time.
    H.264 (yuv420p, faststart) through imageio-ffmpeg's bundled ffmpeg, which Chromium and Safari
    play; without imageio-ffmpeg, VP8 WebM through OpenCV (the suffix becomes .webm) at one frame
    per analysed frame. ``frames``: the :func:`annotated_frames` of the report if already drawn.
    ``progress(i, n)`` after each frame. Returns the written path.
    """
    frames = list(frames) if frames is not None else annotated_frames(report, opacity, True, max_side)
    if not frames:
        raise ValueError("the report holds no frames to write")
    frames = [_even(f, max_side) for f in frames]
    h, w = frames[0].shape[:2]
    frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h)) for f in frames]
    durations = frame_durations(report, seconds_per_frame)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import imageio_ffmpeg
    except ImportError:
        imageio_ffmpeg = None
    if imageio_ffmpeg is not None:
        out = out.with_suffix(".mp4")
        fps = 10.0  # each frame repeated for its duration; H.264 needs a few frames per second to seek well
        writer = imageio_ffmpeg.write_frames(str(out), (w, h), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", quality=None,
                                             output_params=["-crf", "26", "-preset", "veryfast", "-tune",
                                                            "stillimage", "-movflags", "+faststart"],
                                             macro_block_size=2, ffmpeg_log_level="error")
        writer.send(None)
        shown = 0.0
        for i, (f, d) in enumerate(zip(frames, durations)):
            # repeats from the running total, so rounding does not drift over a long video
            reps = max(1, round((shown + d) * fps) - round(shown * fps))
            shown += d
            f = np.ascontiguousarray(f)
            for _ in range(reps):
                writer.send(f)
            if progress:
                progress(i + 1, len(frames))
        writer.close()
        return out
    out = out.with_suffix(".webm")
    fps = 1.0 / max(0.05, sum(durations) / len(durations))
    vw = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"VP80"), fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError("no video encoder available (install imageio-ffmpeg)")
    for i, f in enumerate(frames):
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        if progress:
            progress(i + 1, len(frames))
    vw.release()
    return out


def probability_figure(report: Report, figsize: tuple[float, float] = (7.0, 3.6)):
    """A matplotlib Figure: fake probability over time, one line per face, the
    threshold and the uncertain band drawn. For an image (one frame) one bar per
    face and member instead. The title says which (the app shows no label of its
    own over the plot); the legend sits below the axes. Uses the Agg backend; the caller closes
    the figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    ax = fig.add_subplot()
    lo, hi = report.uncertain_range
    ax.set_ylim(0, 1)
    ax.set_ylabel("fake probability")
    colours = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d", "#dc2626"]
    if report.kind == "video":
        ax.axhspan(lo, hi, color="#f59e0b", alpha=0.12, lw=0, label="uncertain band")
        ax.axhline(report.threshold, color="#444", ls="--", lw=1, label=f"threshold {report.threshold:.2f}")
        for k, t in enumerate(report.faces):
            xs = [o.time_s for o in t.observations]
            ys = [o.fake_probability for o in t.observations]
            ax.plot(xs, ys, marker="o", ms=4, lw=1.6, color=colours[k % len(colours)],
                    label=f"face {t.id}: {t.verdict} {t.fake_probability:.2f}")
        ax.set_xlabel("time in video (s)")
        ax.set_title("Fake probability over time, one line per face", fontsize=10)
        if report.duration_s:
            ax.set_xlim(0, report.duration_s)
        if not report.faces:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes, color="#666")
    else:
        names, vals, cols = [], [], []
        for k, t in enumerate(report.faces):
            names.append(f"face {t.id}\nensemble")
            vals.append(t.fake_probability)
            cols.append(colours[k % len(colours)])
            for m, p in t.models.items():
                names.append(f"face {t.id}\n{m}")
                vals.append(p)
                cols.append(colours[k % len(colours)] + "88")
        ax.set_title("Fake probability per face: the ensemble, then each model", fontsize=10)
        ax.axhspan(lo, hi, color="#f59e0b", alpha=0.12, lw=0, label="uncertain band")
        ax.axhline(report.threshold, color="#444", ls="--", lw=1, label=f"threshold {report.threshold:.2f}")
        if names:
            ax.bar(range(len(vals)), vals, color=cols)
            ax.set_xticks(range(len(vals)), names, fontsize=8)
        else:
            ax.set_xticks([])
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.grid(alpha=0.3)
    # below the axes, never over the points (the constrained layout makes room for it)
    handles, _ = ax.get_legend_handles_labels()
    fig.legend(loc="outside lower center", fontsize=8, ncols=min(3, max(1, len(handles))), frameon=False)
    return fig


def face_panel_grid(obs: FaceObservation, opacity: float = 0.5, columns: int = 2) -> np.ndarray:
    """:func:`face_panel`'s tiles in a grid of ``columns``, each labelled ("crop",
    "ensemble", then the member names): square-ish, so it fits a gallery cell.
    Returns RGB uint8; empty cells are white."""
    panel = face_panel(obs, opacity)
    s = panel.shape[0]
    names = ["crop", "ensemble", *obs.model_cams.keys()] if obs.cam is not None else ["crop"]
    tiles = [panel[:, k * s:(k + 1) * s].copy() for k in range(panel.shape[1] // s)]
    scale = max(0.4, s / 450)
    for tile, name in zip(tiles, names):
        (tw, th), base = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(tile, (0, 0), (tw + 8, th + base + 6), (0, 0, 0), -1)
        cv2.putText(tile, name, (4, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * s, columns * s, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = tile
    return grid
