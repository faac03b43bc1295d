"""How an ensemble's verdicts on validation faces move when the faces lose detail
(notes/experiments/2026-11-23-soften-finetune/).

The validation split of ``faces/train`` (the one every member is selected and calibrated on, with
``--ffhq-frac 0.2``'s FFHQ quarter) is scored as it is, blurred (sigma 1 and 2 px at 160 px) and shrunk to
a 56 px face. For each: the ensemble's AUC on the FF++ part (originals against the four manipulations,
the part like faces/test) and on the whole split, and the share of FF++ originals, UTKFace photos and
fakes called FAKE at the ensemble's threshold plus the app's band. No test crop is read: the ship rule of
the ``--soften-frac`` fine-tune (that experiment's README) was decided on this output
(notes/logs/soft_val_shipped.json, soft_val_candidate.json, soft_val_shipped_soften.json).

  .venv/bin/python notes/scripts/soft_val.py [--weights weights] [--out notes/logs/soft_val.json]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402
from robustness import degrade  # noqa: E402  (the degradations robustness.py applies to faces/test)
from valsplit import save, score, setup  # noqa: E402

CONDITIONS = {"none": None, "blur 1": ("blur", 1.0), "blur 2": ("blur", 2.0), "face_px 56": ("face_px", 56)}


def main() -> int:
    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.config import DECISION
    from deepfake_demo.training.metrics import roc_auc
    from deepfake_demo.training.dataset import ffpp_val_auc
    args, data, y, g, ens = setup(description=__doc__)
    fake_at = ens.threshold() + DECISION.uncertain_band
    rows = {}
    for name, f in CONDITIONS.items():
        ims = data.val_images if f is None else np.stack([degrade(i, *f) for i in data.val_images])
        probs = {c.name: score(ens, c, ims).probs.astype(np.float64) for c in ens.cards}
        p = ensemble_probability(probs, temperature=ens.temperature())
        called = lambda m: round(float((p[m] >= fake_at).mean()), 3)  # noqa: E731
        rows[name] = {"auc_ffpp": round(ffpp_val_auc(y, g, p), 4), "auc": round(roc_auc(y, p), 4),
                      "ffpp_real_called_FAKE": called(g == "train_real_ffpp"),
                      "utkface_called_FAKE": called(g == "train_real_utkface"),
                      "ffhq_called_FAKE": called(g == "train_real_ffhq"),
                      "fake_called_FAKE": called(y == 1)}
        print(name, rows[name], flush=True)
    out = {"weights": args.weights, "n": int(len(y)), "fake_at": round(fake_at, 4), "conditions": rows}
    save(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
