"""The validation split the shipped pair was chosen and calibrated on, and a member's scores on it as the app
scores crops: the setup soft_val.py, flip_tta.py, calib_part.py and reencode_val.py share.

A helper module, not an experiment; ``--help`` lists the options those scripts take.

  .venv/bin/python notes/scripts/valsplit.py --help
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402


def parser(out: bool = True, description: str | None = None) -> argparse.ArgumentParser:
    """``--weights`` (and ``--out`` when ``out``): the options of every script built on :func:`setup`."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights", help="a weights directory (default: the shipped weights)")
    if out:
        ap.add_argument("--out", help="also write the JSON output to this file")
    return ap


def setup(out: bool = True, description: str | None = None):
    """Parse ``--weights`` (and ``--out`` when ``out``) before anything heavy is imported, use 2 threads, and
    return (args, data, labels, groups, ensemble): the ``faces/train`` validation split with ``--ffhq-frac
    0.2``'s FFHQ quarter, cached at 160 px, and the weights directory's ensemble on the CPU."""
    args = parser(out, description).parse_args()
    import torch

    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import load_train_data
    torch.set_num_threads(2)
    data = load_train_data(TrainConfig(input_size=160, ffhq_frac=0.2))
    return args, data, data.val_labels, np.asarray(data.val_groups), load_ensemble(args.weights, "cpu")


def save(args, out: dict) -> None:
    """Write ``out`` as JSON (indent 1) to ``--out`` when it was given: the last step of every script built
    on :func:`setup`."""
    if getattr(args, "out", None):
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


def score(ens, card, images: np.ndarray):
    """``ens.score_member`` on 160 px crops resized to the member's input size, no heatmaps: its MemberOutput."""
    from deepfake_demo.training.augment import resize_to

    crops = np.stack([resize_to(i, card.spec.input_size) for i in images])
    return ens.score_member(card.name, crops, with_cam=False, batch_size=64)


if __name__ == "__main__":
    parser(description=__doc__).parse_args()
    print("valsplit.py is imported by soft_val.py, flip_tta.py, calib_part.py and reencode_val.py; it measures nothing itself")
