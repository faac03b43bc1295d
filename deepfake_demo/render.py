"""Pictures made from a Report: annotated frames, face panels, heatmap files.
Read-only over the Report; used by the CLI and the app."""
from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from .aggregate import Verdict
from .explain import overlay_crop, overlay_frame
from .report import FaceObservation, FaceTrack, Report

__all__ = ["VERDICT_RGB", "observations_by_frame", "annotate_frame", "face_panel", "write_heatmaps"]

VERDICT_RGB = {
    Verdict.FAKE: (220, 38, 38),
    Verdict.REAL: (22, 163, 74),
    Verdict.UNCERTAIN: (234, 140, 0),
    Verdict.NO_FACE: (100, 116, 139),
    Verdict.ERROR: (100, 116, 139),
}


def _verdict_of(p: float, report: Report) -> str:
    if p >= report.threshold + report.uncertain_band:
        return Verdict.FAKE
    if p <= report.threshold - report.uncertain_band:
        return Verdict.REAL
    return Verdict.UNCERTAIN


def observations_by_frame(report: Report) -> dict[int, list[tuple[FaceTrack, FaceObservation]]]:
    """frame index -> the (track, observation) pairs seen in it."""
    out: dict[int, list[tuple[FaceTrack, FaceObservation]]] = {f.index: [] for f in report.frames}
    for t in report.faces:
        for o in t.observations:
            out.setdefault(o.frame_index, []).append((t, o))
    return out


def annotate_frame(report: Report, frame_index: int, opacity: float = 0.5, heatmap: bool = True) -> np.ndarray:
    """The analysed frame with each face's Grad-CAM, box and score drawn on it.
    Returns RGB uint8 (H, W, 3)."""
    frame = next(f for f in report.frames if f.index == frame_index)
    pairs = observations_by_frame(report).get(frame_index, [])
    img = frame.image
    if heatmap:
        img = overlay_frame(img, [(o.cam, o.crop_box) for _, o in pairs if o.cam is not None], opacity)
    else:
        img = img.copy()
    h, w = img.shape[:2]
    thick = max(2, round(max(h, w) / 500))
    scale = max(0.5, max(h, w) / 1400)
    for t, o in pairs:
        colour = VERDICT_RGB[_verdict_of(o.fake_probability, report)]
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


def _stem(report: Report) -> str:
    stem = Path(report.path).stem if report.path else "array"
    return re.sub(r"[^\w.-]+", "_", stem)


def write_heatmaps(report: Report, out_dir: str | os.PathLike, opacity: float = 0.5) -> list[Path]:
    """Write one annotated frame per analysed frame with faces, and one face
    panel per face and frame, as JPEG files into ``out_dir``. Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _stem(report)
    written: list[Path] = []
    for idx, pairs in observations_by_frame(report).items():
        if not pairs:
            continue
        p = out / f"{stem}_frame{idx:06d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(annotate_frame(report, idx, opacity), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        written.append(p)
        for t, o in pairs:
            if o.crop is None:
                continue
            q = out / f"{stem}_face{t.id}_frame{idx:06d}.jpg"
            cv2.imwrite(str(q), cv2.cvtColor(face_panel(o, opacity), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            written.append(q)
    return written
