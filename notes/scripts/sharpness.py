"""How soft the training faces are, and whether softness alone tells fake from real
(notes/experiments/2026-11-23-soften-finetune/ and 2026-11-23-soft-face-warning/).

Detail = the standard deviation of the Laplacian of the grey crop's inner two thirds (the face, not the
reflected border), on the cached 160 px training crops of the FF++ originals. Printed: its 2nd percentile
and median as they are and blurred (Gaussian sigma 2, robustness.degrade), and the AUC of "softer = fake"
for FF++ originals against FF++ fakes after the training augmentations (1,500 draws of each), the figures
behind ``--soften-frac``; then how often the app's soft-face warning
(``DecisionSettings.soft_face_detail``) fires on faces/test and synthetic/ crops, as they are and blurred.
No model is run; no choice is made on the test crops. What it printed is in notes/logs/sharpness.txt.

  .venv/bin/python notes/scripts/sharpness.py > notes/logs/sharpness.txt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402
from robustness import degrade  # noqa: E402


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from deepfake_demo.faces import face_detail as detail  # the measure the app's soft-face warning uses
    from deepfake_demo.training.augment import augment
    from deepfake_demo.training.data import load_group
    from deepfake_demo.training.metrics import roc_auc
    from deepfake_demo.training.config import FAKE_GROUPS
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
    # how often the app's soft-face warning (DecisionSettings.soft_face_detail, set from the 2nd percentile
    # above) fires on held-out crops, as they are and blurred; no model is run
    from deepfake_demo.config import DECISION
    from deepfake_demo.training.data import SYNTHETIC_GROUPS, TEST_GROUPS

    lim = DECISION.soft_face_detail
    for name, groups in (("faces/test", TEST_GROUPS), ("synthetic/", SYNTHETIC_GROUPS)):
        ims = np.concatenate([load_group(g).images for g in groups])
        d = np.array([detail(i) for i in ims])
        b = np.array([detail(degrade(i, "blur", 2.0)) for i in ims])
        print(f"{name} crops ({len(ims)}) below the soft-face limit {lim:g}: {(d < lim).mean():.1%} as they are, "
              f"{(b < lim).mean():.1%} blurred sigma 2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
