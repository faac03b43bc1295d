"""Temperatures refitted on the validation split without its twinned FF++ originals
(notes/experiments/2026-12-06-real-fake-leak/): does calibrating on deployment-like real faces change them?

``--split-from DIR``: a directory whose ``config.json`` is the split's TrainConfig (for the shipped pair: the
Xception card's ``train_config``). Prints each member's and the ensemble's temperature as carded, refitted on
the whole split, and refitted without the FF++ originals that have a training twin (ship_check.TWIN_CUT).

  .venv/bin/python notes/scripts/untwinned_temperature.py --split-from DIR [--weights weights]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ship_check import _untwinned_ffpp_originals  # also puts the repository root on sys.path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-from", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    args = ap.parse_args()
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.calibrate import exported_val_logits
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.metrics import fit_temperature

    cards, ens = read_cards(args.weights), read_ensemble_card(args.weights)
    cfg = TrainConfig.from_dict(json.loads((args.split_from / "config.json").read_text()))
    untwinned = _untwinned_ffpp_originals(cfg)
    zs = {}
    for c in cards:
        logits, y, groups = exported_val_logits(c, cfg)
        zs[c.name] = np.asarray(logits, np.float64)
    y, g = np.asarray(y), np.asarray(groups)
    keep = np.ones(len(y), bool)
    keep[np.nonzero(g == "train_real_ffpp")[0][~untwinned]] = False
    out = {"n": int(len(y)), "n_without_twins": int(keep.sum())}
    for c in cards:
        out[c.name] = {"card": c.spec.temperature, "all": fit_temperature(y, zs[c.name]),
                       "without_twins": fit_temperature(y[keep], zs[c.name][keep])}
    w = {c.name: ens.weight(c.name) for c in cards}
    z = sum(w[c.name] * zs[c.name] / c.spec.temperature for c in cards) / sum(w.values())
    out["ensemble"] = {"card": ens.temperature, "all": fit_temperature(y, z), "without_twins": fit_temperature(y[keep], z[keep])}
    print(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
