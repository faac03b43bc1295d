"""Why the calibration error on faces/test is higher than on validation
(notes/experiments/2026-11-23-calibration-gap/).

faces/test is FF++ originals against FF++ fakes. The FF++ part of the validation split (FF++ originals against
the four FF++ manipulations) is the same kind of data, with about the same share of fakes (printed as
``share_fake``); the whole split adds UTKFace and FFHQ photos of real people. This scores the shipped ensemble on validation (as the app
combines members: each member's logit over its card's temperature, averaged) and reports, for an ensemble
temperature fitted on the whole split (what ships) and one fitted on the FF++ part alone: ECE, mean
predicted probability and the share of fakes on each part. If a temperature fitted on the FF++ part
cannot bring its ECE down, the gap is not the temperature's; no test crop is read. The figures it printed
are in notes/logs/calib_part.json.

  .venv/bin/python notes/scripts/calib_part.py [--weights weights] > notes/logs/calib_part.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402
from valsplit import score, setup  # noqa: E402


def main() -> int:
    from deepfake_demo.training.metrics import expected_calibration_error, fit_temperature, sigmoid
    from deepfake_demo.training.dataset import ffpp_val_mask
    args, data, y, g, ens = setup(out=False, description=__doc__)
    z = np.mean([score(ens, c, data.val_images).logits.astype(np.float64) / c.spec.temperature for c in ens.cards],
                axis=0)
    parts = {"whole split": np.ones(len(y), bool), "FF++ part": ffpp_val_mask(g)}
    out = {}
    for fit_name, fit_mask in parts.items():
        t = float(ens.temperature()) if fit_name == "whole split" else fit_temperature(y[fit_mask], z[fit_mask])
        row = {"temperature": round(t, 4)}
        for name, m in parts.items():
            p = sigmoid(z[m] / t)
            row[name] = {"n": int(m.sum()), "share_fake": round(float(y[m].mean()), 3),
                         "mean_p": round(float(p.mean()), 3), "ece": round(expected_calibration_error(y[m], p), 4)}
        out[f"temperature fitted on the {fit_name}"] = row
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
