"""Each shipped member's backbone in fp32 and under bf16 autocast on this CPU: speed, and how far the
calibrated fake probabilities move (notes/performance.md, change 7; why ``ModelSpec.cpu_bf16`` is set
per arch).

Scores the faces/test crop cache with each member of ``--weights`` on crops cut at its own input size, as
inference cuts them (``python -m deepfake_demo.training.data [--size 224]`` writes
``runs/cache/test_*_s<size>_m0.3.npz``), batch 32, the head in fp32 as ``Ensemble.score_member`` runs it,
and prints (and with ``--out`` writes) crops/s, AUC and the largest and mean change in the member's
calibrated probability. bf16 is fast only where the CPU has AMX or AVX512-BF16.

  .venv/bin/python notes/scripts/bf16_inference.py --weights weights --threads 2 [--out notes/logs/bf16_inference.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="runs/cache")
    ap.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = ap.parse_args()
    import numpy as np
    import torch

    from deepfake_demo.models import cpu_has_bf16, load_ensemble, to_model_input
    from deepfake_demo.training.data import TEST_GROUPS, load_group
    from deepfake_demo.training.metrics import roc_auc

    torch.set_num_threads(args.threads)
    ens = load_ensemble(args.weights, "cpu")
    rows = {"threads": args.threads, "cpu_has_bf16": cpu_has_bf16()}
    for card, model in zip(ens.cards, ens.models):
        size = card.spec.input_size
        try:
            sets = [load_group(g, size, card.spec.crop_margin, Path(args.cache), build=False) for g in TEST_GROUPS]
        except FileNotFoundError as e:
            ap.exit(2, f"{e} (at {size} px: python -m deepfake_demo.training.data --size {size} "
                       f"{' '.join(TEST_GROUPS)})\n")
        images = np.concatenate([c.images for c in sets])
        labels = np.concatenate([c.labels for c in sets])
        probs, row = {}, {"size": size, "crops": int(len(images))}
        for bf16 in (False, True):
            logits, t = [], time.perf_counter()
            for s in range(0, len(images), 32):
                x = to_model_input(images[s:s + 32], card.spec, "cpu")
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    feats = model.forward_features(x)
                with torch.no_grad():
                    logits.append(model.forward_head(feats.float()).view(-1).numpy())
            seconds = time.perf_counter() - t
            z = np.concatenate(logits) / card.spec.temperature
            probs[bf16] = 1 / (1 + np.exp(-z))
            key = "bf16" if bf16 else "fp32"
            row[f"{key}_crops_per_s"] = round(len(images) / seconds, 1)
            row[f"{key}_auc"] = round(roc_auc(labels, z), 4)
        diff = np.abs(probs[True] - probs[False])
        row |= {"max_abs_prob_change": round(float(diff.max()), 4), "mean_abs_prob_change": round(float(diff.mean()), 4)}
        rows[card.name] = row
        print(card.name, json.dumps(row), flush=True)
    print(json.dumps(rows, indent=1))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
