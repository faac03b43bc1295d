"""Are validation's FF++ originals called FAKE less often because their videos are in training?
(notes/experiments/2026-12-06-real-fake-leak/)

The shipped pair calls about a quarter of faces/test's real crops FAKE, but about an eighth of
validation's FF++ originals. The FF++ crops carry no video id, so the random split puts frames of one
video on both sides (notes/experiments/2026-11-23-validation-leak/: a validation original's nearest
training crop has median thumbnail similarity 0.97, a faces/test original's 0.83). This splits the
validation originals by their nearest training original (val_leak.py's 16x16 thumbnail correlation) and
gives the shipped ensemble's verdict shares in each part, with the same split's other real sources and
the FF++ fakes beside them. faces/test enters only as similarities to training (where "unseen" sits),
never with its labels or scores.

  .venv/bin/python notes/scripts/real_fake_leak.py [--weights weights] [--out notes/logs/real_fake_leak.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from val_leak import nn_sim

BANDS = ((0.95, 1.01, "twin in train (>= 0.95)"), (0.90, 0.95, "0.90-0.95"), (-1.0, 0.90, "no twin (< 0.90)"))


def shares(p: np.ndarray, lo: float, hi: float) -> dict:
    """Verdict shares as the app gives them: FAKE above ``hi``, REAL below ``lo``, else UNCERTAIN."""
    n = len(p)
    if n == 0:
        return {"n": 0}
    return {"n": int(n), "fake": round(float((p > hi).mean()), 3), "uncertain": round(float(((p >= lo) & (p <= hi)).mean()), 3),
            "real": round(float((p < lo).mean()), 3), "mean_p": round(float(p.mean()), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from deepfake_demo.config import DECISION
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.calibrate import exported_val_logits
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.data import load_group
    from deepfake_demo.training.dataset import load_train_data
    from deepfake_demo.training.metrics import sigmoid

    torch.set_num_threads(args.threads)
    cards, ens = read_cards(args.weights), read_ensemble_card(args.weights)
    # the split the ensemble was fitted and validated on: its largest member's (the Xception's) config
    cfg = TrainConfig.from_dict(max(cards, key=lambda c: (c.info.get("validation") or {}).get("n", 0))
                                .info["train_config"])
    data = load_train_data(cfg)
    z = 0.0
    for c in cards:
        logits, y, groups = exported_val_logits(c, cfg)
        z = z + ens.weight(c.name) * np.asarray(logits, np.float64) / c.spec.temperature
    z = z / sum(ens.weight(c.name) for c in cards) / ens.temperature
    p, g = sigmoid(z), np.asarray(groups)
    thr = float(ens.threshold)
    lo, hi = thr - DECISION.uncertain_band, thr + DECISION.uncertain_band

    real = g == "train_real_ffpp"
    sim = nn_sim(data.val_images[real], data.real_ffpp[0])
    test_sim = nn_sim(load_group("test_real_ffpp", size=cfg.cache_size, margin=0.3).images, data.real_ffpp[0])
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    out = {"weights": str(args.weights), "band": [lo, hi], "split": {"val_frac": cfg.val_frac, "seed": cfg.seed},
           "nn_sim_quantiles_10_25_50_75_90": {"validation FF++ originals": [round(float(v), 3) for v in np.quantile(sim, q)],
                                               "faces/test originals (unseen videos)": [round(float(v), 3) for v in np.quantile(test_sim, q)]},
           "faces_test_originals_share_per_band": {name: round(float(((test_sim >= a) & (test_sim < b)).mean()), 3)
                                                    for a, b, name in BANDS},
           "ffpp_originals_by_nearest_train_original": {name: shares(p[real][(sim >= a) & (sim < b)], lo, hi)
                                                         for a, b, name in BANDS},
           "by_group": {grp: shares(p[g == grp], lo, hi) for grp in dict.fromkeys(groups)}}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
