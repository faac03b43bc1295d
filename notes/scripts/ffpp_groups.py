"""Can the FF++ originals be grouped into videos, for a validation split that holds out whole videos?

The shared FF++ crops (``roi_N.jpg``) carry no video id. This links every pair of originals (faces/train
and faces/test together) whose 16x16 thumbnail correlation (``training.data.thumbnails``, the measure
behind ``--ffpp-drop-twins``) is at least a cut, and counts the connected components at several cuts:
how many groups, how large, and how many join a faces/train crop to a faces/test crop (faces/test is
drawn from other videos, so a cut that joins them chains different videos together). Only images are
used, no labels or scores.

  .venv/bin/python notes/scripts/ffpp_groups.py [--out notes/logs/ffpp_groups.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CUTS = (0.85, 0.90, 0.93, 0.95, 0.97)


def components(sim: np.ndarray, cut: float) -> np.ndarray:
    """Component label per crop of the graph linking crops with similarity >= ``cut``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    adj = sim >= cut
    np.fill_diagonal(adj, False)
    return connected_components(csr_matrix(adj), directed=False)[1]


def describe(labels: np.ndarray, n_train: int) -> dict:
    sizes = np.bincount(labels)
    train_c, test_c = set(labels[:n_train]), set(labels[n_train:])
    return {"groups": int(len(sizes)), "singletons": int((sizes == 1).sum()), "median_size": float(np.median(sizes)),
            "largest": [int(s) for s in np.sort(sizes)[-5:][::-1]],
            "train_groups": len(train_c), "test_groups": len(test_c),
            "groups_joining_train_and_test": len(train_c & test_c)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from deepfake_demo.training.data import load_group, thumbnails

    tr, te = load_group("train_real_ffpp"), load_group("test_real_ffpp")
    t = thumbnails(np.concatenate([tr.images, te.images]))
    sim = t @ t.T
    out = {"n_train": int(len(tr.images)), "n_test": int(len(te.images)),
           "by_cut": {f"{c:.2f}": describe(components(sim, c), len(tr.images)) for c in CUTS}}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
