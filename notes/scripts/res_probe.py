"""Probe: the shipped members scored at larger input sizes, no training
(notes/experiments/2026-11-23-input-size-224/; what it printed is in that README).

Cuts nothing new: it reads the 224 px crop cache (``python -m deepfake_demo.training.data --size 224 ...``)
and scores the validation split the shipped pair was chosen on (FF++/UTKFace part + FFHQ validation
quarter, ``--ffhq-frac 0.2``) with each member's spec at 160, 192 and 224 px (crops resized from 224 with
INTER_AREA, as ``predict_logits`` does). faces/test plays no part.

  .venv/bin/python notes/scripts/res_probe.py --weights weights
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 192, 224])
    args = ap.parse_args()
    import torch

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.metrics import roc_auc, sigmoid
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import load_train_data
    from deepfake_demo.training.loop import predict_logits
    torch.set_num_threads(2)
    data = load_train_data(TrainConfig(input_size=224, cache_size=224, ffhq_frac=0.2))
    y, g = data.val_labels, np.asarray(data.val_groups)
    ffhq = g == "train_real_ffhq"
    old = ~ffhq
    ens = load_ensemble(args.weights, "cpu")
    thr = float(ens.ensemble_card.threshold)
    out = {}
    for size in args.sizes:
        logits = {c.spec.arch: predict_logits(m, data.val_images, replace(c.spec, input_size=size)) / c.spec.temperature
                  for c, m in zip(ens.cards, ens.models)}
        p = ensemble_probability([sigmoid(z) for z in logits.values()],
                                 temperature=float(ens.ensemble_card.temperature))
        row = {a: round(roc_auc(y, z), 4) for a, z in logits.items()}
        row |= {"ensemble": round(roc_auc(y, p), 4), "ensemble_ffpp_utk": round(roc_auc(y[old], p[old]), 4),
                "ffhq_called_fake": round(verdict_shares(y[ffhq], p[ffhq], thr)["real"]["FAKE"], 4)}
        out[size] = row
        print(size, row, flush=True)
    print(json.dumps({"n": int(len(y)), "n_fake": int(y.sum()), "by_input_size": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
