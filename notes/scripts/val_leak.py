"""How leaky is the random validation split? (notes/experiments/2026-11-23-validation-leak/)

The FF++ crops (`roi_N.jpg`) carry no video id, so ``split_train_val`` splits
them at random and frames of one video can sit on both sides. This measures
how much, and what it does to the shipped pair's validation figures:

1. every crop (cached, 160 px) becomes a 16x16 RGB thumbnail, centred and
   scaled to unit length; two crops' similarity is the dot product (a
   correlation: 1 = the same picture);
2. each validation crop gets its nearest neighbour among the *training* crops
   of its own group, and, for reference, each faces/test crop its nearest
   neighbour among the same training crops (faces/test comes from
   other videos, so that is what "unseen" looks like);
3. the shipped ensemble's validation AUC on all of validation and on the part
   whose nearest training neighbour is below a similarity cut;
4. its AUC against the FF++ fakes with each real source alone (FF++ originals,
   UTKFace, FFHQ): faces/test's reals are FF++ originals only.

faces/test labels and scores play no part; only its images' similarity to train. What it printed (the
JSON part) is in notes/logs/val_leak.json.

  .venv/bin/python notes/scripts/val_leak.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--cuts", type=float, nargs="+", default=[0.99, 0.97, 0.95, 0.9])
    args = ap.parse_args()
    import torch

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.data import load_group, nearest_similarity
    from deepfake_demo.training.metrics import roc_auc, sigmoid
    from deepfake_demo.training.config import FAKE_GROUPS, TrainConfig
    from deepfake_demo.training.dataset import load_train_data
    from deepfake_demo.training.loop import predict_logits
    torch.set_num_threads(2)
    cfg = TrainConfig(input_size=160, cache_size=160, ffhq_frac=0.2)
    data = load_train_data(cfg)
    y, g = data.val_labels, np.asarray(data.val_groups)

    # nearest training neighbour of each validation crop, within its group: the train pools load_train_data built
    train_pool = {"train_real_ffpp": data.real_ffpp[0], "train_real_utkface": data.real_utk[0],
                  **{grp: data.fake[0][data.fake[1] == i] for i, grp in enumerate(FAKE_GROUPS)}}
    sim = np.zeros(len(y), np.float32)  # FFHQ quarter: photos of different people, counted as unseen below
    quant, test_q = {}, {}
    for grp, pool in train_pool.items():
        s = nearest_similarity(data.val_images[g == grp], pool)
        sim[g == grp] = s
        quant[grp] = [round(float(v), 3) for v in np.quantile(s, [0.1, 0.25, 0.5, 0.75, 0.9])]
        if grp != "train_real_utkface":
            tgrp = grp.replace("train_", "test_")
            st = nearest_similarity(load_group(tgrp, size=160, margin=0.3).images, pool)
            test_q[tgrp] = [round(float(v), 3) for v in np.quantile(st, [0.1, 0.25, 0.5, 0.75, 0.9])]
    print("validation -> train nearest-neighbour similarity, quantiles 10/25/50/75/90 %:")
    for k, v in quant.items():
        print(f"  {k:28s} {v}")
    print("faces/test -> train (other videos), same quantiles:")
    for k, v in test_q.items():
        print(f"  {k:28s} {v}")

    ens = load_ensemble(args.weights, "cpu")
    logits = [predict_logits(m, data.val_images, c.spec) / c.spec.temperature for c, m in zip(ens.cards, ens.models)]
    p = ensemble_probability([sigmoid(z) for z in logits], temperature=float(ens.ensemble_card.temperature))
    rows = {"all": {"n": int(len(y)), "n_fake": int(y.sum()), "auc": round(roc_auc(y, p), 4)}}
    for cut in args.cuts:
        keep = sim < cut
        rows[f"nn_below_{cut}"] = {"n": int(keep.sum()), "n_fake": int(y[keep].sum()),
                                   "auc": round(roc_auc(y[keep], p[keep]), 4),
                                   "kept_per_group": {k: int((keep & (g == k)).sum()) for k in dict.fromkeys(g)}}
    by_source = {}
    for src in ("train_real_ffpp", "train_real_utkface", "train_real_ffhq"):
        m = (y == 1) | (g == src)
        by_source[src] = {"n_real": int((g == src).sum()), "auc": round(roc_auc(y[m], p[m]), 4)}
    print(json.dumps({"validation_nn_quantiles": quant, "test_nn_quantiles": test_q, "ensemble_auc": rows,
                      "ensemble_auc_fakes_vs_one_real_source": by_source}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
