"""The validation split the shipped pair was chosen and calibrated on, and a member's scores on it as the app
scores crops: the setup soft_val.py, flip_tta.py and calib_part.py share (2026-11-23, sixth session)."""
from __future__ import annotations

import argparse

import numpy as np


def setup(out: bool = True):
    """Parse ``--weights`` (and ``--out`` when ``out``), use 2 threads, and return (args, data, labels,
    groups, ensemble): the ``faces/train`` validation split with ``--ffhq-frac 0.2``'s FFHQ quarter,
    cached at 160 px, and the weights directory's ensemble on the CPU."""
    import torch

    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import load_train_data
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="weights")
    if out:
        ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(2)
    data = load_train_data(TrainConfig(input_size=160, ffhq_frac=0.2))
    return args, data, data.val_labels, np.asarray(data.val_groups), load_ensemble(args.weights, "cpu")


def score(ens, card, images: np.ndarray):
    """``ens.run`` on 160 px crops resized to the member's input size, no heatmaps: its MemberOutput."""
    from deepfake_demo.training.augment import resize_to

    crops = np.stack([resize_to(i, card.spec.input_size) for i in images])
    return ens.run(card.name, crops, with_cam=False, batch_size=64)
