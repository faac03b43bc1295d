"""Are validation's FF++ originals called FAKE less often because their videos are in training?
(notes/experiments/2026-12-06-real-fake-leak/)

The shipped pair calls about a quarter of faces/test's real crops FAKE, but about an eighth of
validation's FF++ originals. The FF++ crops carry no video id, so the random split puts frames of one
video on both sides (notes/experiments/2026-11-23-validation-leak/: a validation original's nearest
training crop has median thumbnail similarity 0.97, a faces/test original's 0.83). This splits the
validation originals by their nearest training original (``training.data.nearest_similarity``: 16x16
thumbnail correlation) and
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

from ship_check import ensemble_val_logits  # puts the repo on sys.path

from deepfake_demo.training.dataset import TWIN_CUT, ffpp_val_twin_similarity  # noqa: E402

BANDS = ((0.95, 1.01, "twin in train (>= 0.95)"), (0.90, 0.95, "0.90-0.95"), (-1.0, 0.90, "no twin (< 0.90)"))


def shares(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """The app's verdict shares (``evaluate.verdict_shares``) of crops that are all of one class."""
    from deepfake_demo.evaluate import verdict_shares

    if len(y) == 0:
        return {"n": 0}
    kind = "fake" if y[0] == 1 else "real"
    return {"n": int(len(y)), **{k: round(v, 3) for k, v in verdict_shares(y, p, threshold)[kind].items()},
            "mean_p": round(float(p.mean()), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.data import load_group, nearest_similarity
    from deepfake_demo.training.dataset import load_train_data
    from deepfake_demo.training.metrics import sigmoid

    torch.set_num_threads(args.threads)
    cards, ens = read_cards(args.weights), read_ensemble_card(args.weights)
    # the split the ensemble was fitted and validated on: its largest member's (the Xception's) config
    cfg = TrainConfig.from_dict(max(cards, key=lambda c: (c.info.get("validation") or {}).get("n", 0))
                                .info["train_config"])
    z, y, groups = ensemble_val_logits(args.weights, cfg)
    p, g, thr = sigmoid(z), np.asarray(groups), float(ens.threshold)

    real = g == "train_real_ffpp"
    sim = ffpp_val_twin_similarity(cfg)  # validation originals -> nearest training original
    data = load_train_data(cfg)
    train_orig = data.real_ffpp[0]
    test_sim = nearest_similarity(load_group("test_real_ffpp", size=cfg.cache_size, margin=0.3).images, train_orig)
    train_to_val = nearest_similarity(train_orig, data.val_images[real])
    q = [0.1, 0.25, 0.5, 0.75, 0.9]
    out = {"weights": str(args.weights), "threshold": thr, "split": {"val_frac": cfg.val_frac, "seed": cfg.seed},
           "nn_sim_quantiles_10_25_50_75_90": {"validation FF++ originals": [round(float(v), 3) for v in np.quantile(sim, q)],
                                               "faces/test originals (unseen videos)": [round(float(v), 3) for v in np.quantile(test_sim, q)]},
           "faces_test_originals_share_per_band": {name: round(float(((test_sim >= a) & (test_sim < b)).mean()), 3)
                                                    for a, b, name in BANDS},
           # what --ffpp-drop-twins at ship_check's cut would do on this split, and where other videos sit
           f"at_{TWIN_CUT}": {"training_originals_dropped": int((train_to_val >= TWIN_CUT).sum()),
                              "training_originals": int(len(train_orig)),
                              "validation_originals_with_twin": int((sim >= TWIN_CUT).sum()),
                              "validation_originals": int(len(sim)),
                              "faces_test_originals_reaching_it": round(float((test_sim >= TWIN_CUT).mean()), 3),
                              "faces_test_sim_95th_percentile": round(float(np.quantile(test_sim, 0.95)), 3)},
           "ffpp_originals_by_nearest_train_original": {name: shares(y[real][(sim >= a) & (sim < b)],
                                                                     p[real][(sim >= a) & (sim < b)], thr)
                                                         for a, b, name in BANDS},
           "by_group": {grp: shares(y[g == grp], p[g == grp], thr) for grp in dict.fromkeys(groups)}}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
