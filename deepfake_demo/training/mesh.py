"""Dense face outlines for Self-Blended Images: MediaPipe's 468-point face mesh on the cached crops.

``python -m deepfake_demo.training.mesh [groups...]`` reads each group's crop cache
(``runs/cache/<group>_s160_m0.3.npz``, made by :mod:`.data`) and writes beside it
``<same name>.mesh.npz`` with ``oval`` (N, 36, 2) float32: the face-oval points of the mesh in
crop pixels (NaN where no mesh was found), and ``found`` (N,) bool. ``--sbi-landmarks mesh``
then builds the self-blend mask from that outline instead of from 5 extrapolated MTCNN points
(:func:`.sbi.face_hull_mask`).

MediaPipe is needed only here, once per cache, and in its 0.10 line, whose wheel still ships
the face-mesh model (``mediapipe/modules/face_landmark/face_landmark.tflite``; the 1.x wheels
ship none). It pins numpy < 2, so it lives in its own environment::

    python -m venv runs/mpvenv && runs/mpvenv/bin/pip install -r requirements-mesh.txt
    runs/mpvenv/bin/python -m deepfake_demo.training.mesh

This module imports nothing else of the project's (the mesh environment has no torch).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["mesh_path", "load_oval", "FACE_OVAL", "main"]

CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "cache"
# the groups whose real faces are self-blended in training (dataset.EpochSet)
SBI_GROUPS = ("train_real_ffpp", "train_real_utkface", "synthetic_real_ffhq", "dfdc_real")
# MediaPipe's FACEMESH_FACE_OVAL, in order around the face (forehead, right cheek, chin, left cheek)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def mesh_path(cache_file: Path) -> Path:
    """Where the mesh outlines of one crop cache live."""
    return cache_file.with_name(cache_file.name[: -len(".npz")] + ".mesh.npz")


def load_oval(cache_file: Path, n: int) -> np.ndarray | None:
    """The (n, 36, 2) outlines of a cache (NaN rows: no mesh), or None if the mesh file is absent
    or was made from another version of the cache (a different crop count)."""
    p = mesh_path(cache_file)
    if not p.exists():
        return None
    z = np.load(p)
    oval = z["oval"]
    return oval if len(oval) == n else None


def outlines(images: np.ndarray, min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Face-oval points (N, 36, 2) float32 crop pixels (NaN: none found) and found (N,) of RGB
    uint8 crops (N, S, S, 3)."""
    import mediapipe as mp

    n, h, w = images.shape[:3]
    oval = np.full((n, len(FACE_OVAL), 2), np.nan, np.float32)
    found = np.zeros(n, bool)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                         min_detection_confidence=min_confidence) as fm:
        for i in range(n):
            res = fm.process(np.ascontiguousarray(images[i]))
            if not res.multi_face_landmarks:
                continue
            lm = res.multi_face_landmarks[0].landmark
            oval[i] = [(lm[j].x * w, lm[j].y * h) for j in FACE_OVAL]
            found[i] = True
    return oval, found


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Face-mesh outlines of the cached real crops, for --sbi-landmarks mesh")
    ap.add_argument("groups", nargs="*", metavar="group", help=f"default: {' '.join(SBI_GROUPS)}")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    args = ap.parse_args(argv)
    stats = {}
    for g in args.groups or SBI_GROUPS:
        src = args.cache_dir / f"{g}_s{args.size}_m{args.margin:g}.npz"
        if not src.exists():
            print(f"{g}: no crop cache at {src}; run `python -m deepfake_demo.training.data {g}` first")
            return 2
        images = np.load(src)["images"]
        oval, found = outlines(images)
        dst = mesh_path(src)
        tmp = dst.with_name(dst.name + ".tmp.npz")
        np.savez(tmp, oval=oval, found=found)
        os.replace(tmp, dst)
        stats[g] = {"n": int(len(found)), "found": int(found.sum())}
        print(g, stats[g], flush=True)
    (args.cache_dir / "mesh_stats.json").write_text(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
