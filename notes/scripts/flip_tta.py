"""Does mirroring each face and averaging the two logits (flip test-time augmentation) help the shipped pair?
(notes/experiments/2026-11-23-flip-tta/)

Scores the validation split of ``faces/train`` (the one every member is selected and calibrated on, with
``--ffhq-frac 0.2``'s FFHQ quarter) as the app scores crops, once as they are and once mirrored left-right.
"plain" is what ships (the cards' temperatures, the ensemble card's temperature); "flip" averages each
member's logit over the crop and its mirror, and refits every temperature on that, as fit_ensemble does,
on this same split. For both: the ensemble's AUC on the FF++ part (originals against the four
manipulations, the part like faces/test) and on the whole split, log-loss and ECE, and each member's AUC.
No test crop is read; the rule it decides is in that experiment's README, its output in
notes/logs/flip_tta.json.

  .venv/bin/python notes/scripts/flip_tta.py [--weights weights] [--out notes/logs/flip_tta.json]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402
from valsplit import save, score, setup  # noqa: E402


def main() -> int:
    from deepfake_demo.training.metrics import expected_calibration_error, fit_temperature, log_loss, roc_auc, sigmoid
    from deepfake_demo.training.dataset import ffpp_val_auc
    args, data, y, g, ens = setup(description=__doc__)

    plain, flip, members = [], [], {}
    for c in ens.cards:
        lg = score(ens, c, data.val_images).logits.astype(np.float64)
        lf = score(ens, c, np.ascontiguousarray(data.val_images[:, :, ::-1])).logits
        both = (lg + lf.astype(np.float64)) / 2
        plain.append(lg / c.spec.temperature)
        flip.append(both / fit_temperature(y, both))
        members[c.name] = {"auc_plain": roc_auc(y, lg), "auc_flip": roc_auc(y, both),
                           "auc_mirror_only": roc_auc(y, lf), "logit_corr_crop_vs_mirror": float(np.corrcoef(lg, lf)[0, 1])}

    rows = {}
    for name, zs, t in (("plain", plain, float(ens.temperature())), ("flip", flip, None)):
        z = np.mean(zs, axis=0)
        t = fit_temperature(y, z) if t is None else t
        p = sigmoid(z / t)
        rows[name] = {"auc_ffpp_part": ffpp_val_auc(y, g, p), "auc_whole_split": roc_auc(y, p),
                      "log_loss": log_loss(y, p), "ece": expected_calibration_error(y, p), "temperature": t}
    d = {k: rows["flip"][k] - rows["plain"][k] for k in ("auc_ffpp_part", "auc_whole_split")}
    rows["passes"] = bool(d["auc_ffpp_part"] >= 0.01 and d["auc_whole_split"] >= 0.0)
    out = {"weights": args.weights, "n": int(len(y)), "members": members, "ensemble": rows, "gain": d}
    print(json.dumps(out, indent=1))
    save(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
