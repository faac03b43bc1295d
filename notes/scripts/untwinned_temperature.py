"""Temperatures refitted on the validation split without its twinned FF++ originals
(notes/experiments/2026-12-06-real-fake-leak/): does calibrating on deployment-like real faces change them?

``--split-from DIR``: a directory whose ``config.json`` is the split's TrainConfig (for the shipped pair: the
Xception card's ``train_config``). Prints each member's and the ensemble's temperature as carded, refitted on
the whole split, and refitted without the FF++ originals that have a training twin (training.dataset.TWIN_CUT).

  .venv/bin/python notes/scripts/untwinned_temperature.py --split-from DIR [--weights weights]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ship_check import ensemble_val_logits  # puts the repo on sys.path

from deepfake_demo.training.dataset import TWIN_CUT, untwinned_val_mask  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split-from", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    args = ap.parse_args()
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.metrics import fit_temperature

    cards, ens = read_cards(args.weights), read_ensemble_card(args.weights)
    cfg = TrainConfig.from_dict(json.loads((args.split_from / "config.json").read_text()))
    zs: dict = {}
    z, y, groups = ensemble_val_logits(args.weights, cfg, zs)
    keep = untwinned_val_mask(cfg, groups, TWIN_CUT)
    out = {"n": int(len(y)), "n_without_twins": int(keep.sum())}
    for c in cards:
        out[c.name] = {"card": c.spec.temperature, "all": fit_temperature(y, zs[c.name]),
                       "without_twins": fit_temperature(y[keep], zs[c.name][keep])}
    # z is already over the shipped ensemble temperature: a refit on it is a factor on that temperature
    out["ensemble"] = {"card": ens.temperature, "all": ens.temperature * fit_temperature(y, z),
                       "without_twins": ens.temperature * fit_temperature(y[keep], z[keep])}
    print(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
