"""How soft the training faces are, and whether softness alone tells fake from real (2026-11-23, fifth session).

Detail = the standard deviation of the Laplacian of the grey crop's inner two thirds (the face, not the
reflected border), on the cached 160 px training crops of the FF++ originals. Printed: its 2nd percentile
and median as they are and blurred (Gaussian sigma 2, robustness.degrade), and the AUC of "softer = fake"
for FF++ originals against FF++ fakes after the training augmentations (1,500 draws of each), the figures
behind ``--soften-frac`` in notes/training.md ("Soft faces"). No model, no test crop.

  PYTHONPATH=. .venv/bin/python notes/scripts/sharpness.py
"""
from __future__ import annotations

import cv2
import numpy as np
from robustness import degrade


def detail(img: np.ndarray) -> float:
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h = g.shape[0]
    return float(cv2.Laplacian(g[h // 6:h - h // 6, h // 6:h - h // 6], cv2.CV_32F, ksize=1).std())


def main() -> int:
    from deepfake_demo.training.augment import augment
    from deepfake_demo.training.data import load_group
    from deepfake_demo.training.metrics import roc_auc
    from deepfake_demo.training.trainer import FAKE_GROUPS

    real = load_group("train_real_ffpp").images
    fake = np.concatenate([load_group(g).images for g in FAKE_GROUPS])
    plain = np.array([detail(i) for i in real])
    soft = np.array([detail(degrade(i, "blur", 2.0)) for i in real])
    print(f"FF++ originals, train crops ({len(real)}): detail 2nd percentile {np.percentile(plain, 2):.2f}, "
          f"median {np.median(plain):.2f}; blurred sigma 2: median {np.median(soft):.2f}, "
          f"{(plain < np.median(soft)).mean():.1%} of unblurred crops softer than that median")
    rng = np.random.default_rng(0)
    ri, fi = rng.integers(0, len(real), 1500), rng.integers(0, len(fake), 1500)
    rs = [detail(augment(real[j], np.random.default_rng([3, k]), 160)) for k, j in enumerate(ri)]
    fs = [detail(augment(fake[j], np.random.default_rng([1, int(j)]), 160)) for j in fi]
    y = np.r_[np.zeros(len(rs)), np.ones(len(fs))]
    print(f"after augmentation, AUC of 'softer = fake' (FF++ originals vs FF++ fakes): {roc_auc(y, -np.r_[rs, fs]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
