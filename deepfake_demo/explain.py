"""Grad-CAM maps in face and frame geometry, and their overlays.

The maps themselves come from pytorch-grad-cam inside ``models.Ensemble.score_member``
(head-only gradient); here they are moved between crop regions, combined
across members and drawn. All functions are pure: arrays in, arrays out.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np
from pytorch_grad_cam.utils.image import show_cam_on_image

__all__ = ["warp_cam", "combine_cams", "overlay_crop", "overlay_frame", "cam_mass_inside"]


def warp_cam(cam: np.ndarray, src_box: Sequence[int], dst_box: Sequence[int], size: int) -> np.ndarray:
    """Resample a map covering square ``src_box`` (frame pixels) onto square
    ``dst_box`` at ``size`` x ``size``; outside ``src_box`` it is 0.
    cam: (h, w) float -> (size, size) float32."""
    h, w = cam.shape[:2]
    sx1, sy1, sx2, sy2 = (float(v) for v in src_box)
    dx1, dy1, dx2, dy2 = (float(v) for v in dst_box)
    # dst pixel (u, v) -> frame (x, y) -> src map pixel
    ax = (dx2 - dx1) / size * w / (sx2 - sx1)
    ay = (dy2 - dy1) / size * h / (sy2 - sy1)
    bx = (dx1 - sx1) * w / (sx2 - sx1) + 0.5 * ax - 0.5
    by = (dy1 - sy1) * h / (sy2 - sy1) + 0.5 * ay - 0.5
    m = np.array([[ax, 0, bx], [0, ay, by]], dtype=np.float64)
    return cv2.warpAffine(cam.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def combine_cams(cams: Iterable[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of same-shape maps, rescaled to [0, 1] (all-zero stays zero).

    The pipeline weights each member's map by that member's fake probability:
    every map is normalised on its own, so a member that sees no sign of
    manipulation would otherwise add a full-strength map of noise."""
    stack = np.stack([np.asarray(c, dtype=np.float32) for c in cams])
    w = np.ones(len(stack), np.float32) if weights is None else np.asarray(weights, np.float32)
    if not w.sum() > 0:
        w = np.ones(len(stack), np.float32)
    mean = np.tensordot(w / w.sum(), stack, axes=1)
    top = float(mean.max())
    return mean / top if top > 0 else mean


def overlay_crop(crop: np.ndarray, cam: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """JET heatmap over a face crop. crop (S, S, 3) RGB uint8, cam (S, S) in [0, 1]."""
    opacity = float(np.clip(opacity, 0.0, 1.0))
    return show_cam_on_image(crop.astype(np.float32) / 255.0, np.clip(cam, 0, 1), use_rgb=True,
                             image_weight=1.0 - opacity)


def overlay_frame(frame: np.ndarray, cams: Sequence[tuple[np.ndarray, Sequence[int]]],
                  opacity: float = 0.5) -> np.ndarray:
    """Heatmaps pasted into a full frame, each over its square region.

    frame (H, W, 3) RGB uint8; ``cams`` are (map (S, S) in [0, 1], crop_box)
    pairs. The colour is blended with weight ``opacity * map`` so cold regions
    leave the frame as it was and only what the models looked at lights up.
    """
    h, w = frame.shape[:2]
    pieces = []  # (map resized to its box, clipped frame rectangle) per face
    for cam, (x1, y1, x2, y2) in cams:
        side = max(1, int(x2 - x1))
        fx1, fy1, fx2, fy2 = max(0, x1), max(0, y1), min(w, x1 + side), min(h, y1 + side)
        if fx2 <= fx1 or fy2 <= fy1:
            continue
        big = cv2.resize(np.asarray(cam, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        pieces.append((big[fy1 - y1:fy2 - y1, fx1 - x1:fx2 - x1], (fx1, fy1, fx2, fy2)))
    out = frame.copy()
    if not pieces:
        return out
    # Blend only inside the union of the face regions: outside it the weight is 0
    # and the frame is unchanged, so a 1080p frame costs what its faces cost.
    ux1, uy1 = min(r[0] for _, r in pieces), min(r[1] for _, r in pieces)
    ux2, uy2 = max(r[2] for _, r in pieces), max(r[3] for _, r in pieces)
    heat = np.zeros((uy2 - uy1, ux2 - ux1), np.float32)
    for region, (fx1, fy1, fx2, fy2) in pieces:
        sub = heat[fy1 - uy1:fy2 - uy1, fx1 - ux1:fx2 - ux1]
        np.maximum(sub, region, out=sub)
    if not heat.any():
        return out
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (float(np.clip(opacity, 0, 1)) * heat)[:, :, None]
    roi = out[uy1:uy2, ux1:ux2]
    roi[:] = (roi.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha + 0.5).astype(np.uint8)
    return out


def cam_mass_inside(cam: np.ndarray, box: Sequence[float], crop_box: Sequence[int]) -> float:
    """Share of a crop-aligned map's mass that falls inside ``box`` (frame pixels)."""
    s = cam.shape[0]
    x1, y1, x2, _ = crop_box
    scale = s / float(x2 - x1)
    bx1, by1, bx2, by2 = [int(round((v - o) * scale)) for v, o in zip(box, (x1, y1, x1, y1))]
    total = float(cam.sum())
    if total <= 0:
        return 0.0
    return float(cam[max(0, by1):max(0, by2), max(0, bx1):max(0, bx2)].sum()) / total
