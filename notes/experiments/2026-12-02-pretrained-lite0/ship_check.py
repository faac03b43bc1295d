"""The ship rule of this experiment (README.md beside this file), on validation only.

Scores an ensemble's members on the validation split of a training run's config (the new split: the
shipped members' split plus DFDC), combines them as that ensemble's card says (weights, temperatures),
and prints AUC, AUC on the FF++ part, AUC per source and their mean (auc_cross) for each ensemble given.

    .venv/bin/python notes/experiments/2026-12-02-pretrained-lite0/ship_check.py \\
        --split-from runs/tf_efficientnet_lite0_160_pre --ensembles runs/old_weights runs/candidate \\
        --out notes/experiments/2026-12-02-pretrained-lite0/ship_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root: runs without PYTHONPATH

import numpy as np


def main() -> int:
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.calibrate import calibration, exported_val_logits
    from deepfake_demo.training.config import TrainConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--split-from", type=Path, required=True, help="a run directory (its config.json)")
    ap.add_argument("--ensembles", type=Path, nargs="+", required=True, help="weights directories")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cfg = TrainConfig.from_dict(json.loads((args.split_from / "config.json").read_text()))
    results = {}
    for wdir in args.ensembles:
        cards, ens = read_cards(wdir), read_ensemble_card(wdir)
        zs, labels, groups = [], None, None
        for c in cards:
            vl, labels, groups = exported_val_logits(c, cfg)
            w = ens.weight(c.name) if ens is not None and ens.fits([x.name for x in cards]) else 1 / len(cards)
            zs.append(w * np.asarray(vl, np.float64) / c.spec.temperature)
        wsum = sum(ens.weight(c.name) for c in cards) if ens is not None else 1.0
        z = np.sum(zs, axis=0) / wsum / (ens.temperature if ens is not None else 1.0)
        cal = calibration(labels, z, groups)
        results[str(wdir)] = {"members": [c.name for c in cards],
                              "ece": cal["ece_before"],  # with the ensemble's own temperature, as shipped
                              **{k: cal[k] for k in ("auc", "auc_ffpp", "auc_by_source", "auc_cross", "n")}}
        print(str(wdir), json.dumps(results[str(wdir)], default=float), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
