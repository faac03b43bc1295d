"""Ship rules for CPU fine-tunes of the shipped pair, each committed before its run (notes/training.md).

Scores the shipped ensemble (--reference, a weights directory, on its own 160 px crop cache) and the
candidate runs' best checkpoints (--runs, on the --cache-size crop cache, each at its own input size) on ONE
validation split: the FF++/UTKFace part plus the FFHQ validation quarter (``--ffhq-frac 0.2``), the
split the shipped pair was chosen on. faces/test, the held-out FFHQ quarter and the videos play no part.
Each candidate member's temperature, and then the ensemble's, is fitted on this split as training.calibrate does.

``--rule input-size`` (the 224 px fine-tune, "Input size"; ``--cache-size 224``):
  the candidate ships if its ensemble AUC on the whole split >= the reference's + 0.01 and its share of
  FFHQ validation photos called FAKE (the app's band) <= the reference's + 0.05.
``--rule ffpp-selection`` (the fine-tune chosen on FF++-only validation AUC, "What validation measures"):
  the candidate ships if its ensemble AUC on the FF++ part (FF++ originals against FF++ fakes) >= the
  reference's + 0.015, its AUC on the whole split >= the reference's - 0.01, and its FFHQ share called
  FAKE <= the reference's + 0.05.
``--rule soften`` (the ``--soften-frac`` fine-tune, "Soft faces"; the figures of notes/scripts/soft_val.py,
  here also for the one-member swaps): the candidate ships if, as is, its FF++-part AUC >= the reference's - 0.01,
  its whole-split AUC >= the reference's - 0.01 and its FFHQ share called FAKE <= the reference's + 0.05; and,
  with every validation crop blurred (Gaussian sigma 2), its share of FF++ originals called FAKE <= 0.25 and
  its FF++-part AUC >= the reference's.
``--rule soup`` (notes/scripts/soup.py's weight averages, "Model soup"): the candidate ships if, as is, its
  FF++-part AUC >= the reference's + 0.005, its whole-split AUC >= the reference's - 0.005 and its FFHQ share
  called FAKE <= the reference's + 0.05; and, blurred (sigma 2), its share of FF++ originals called FAKE <= the
  reference's + 0.03 and its FF++-part AUC >= the reference's - 0.005 (the soft-face gains kept).
For any rule: 1. the candidate pair ships if it passes; 2. else a pair with one member swapped
(candidate + shipped member) that passes, the higher figure of the rule if both do; 3. else nothing ships.

  PYTHONPATH=. .venv/bin/python notes/scripts/ship_check.py --rule input-size --cache-size 224 \
      --reference weights --runs runs/efficientnet_b0_224_ft runs/legacy_xception_224_ft
  PYTHONPATH=. .venv/bin/python notes/scripts/ship_check.py --rule ffpp-selection \
      --reference weights --runs runs/efficientnet_b0_160_ffsel runs/legacy_xception_160_ffsel
  PYTHONPATH=. .venv/bin/python notes/scripts/ship_check.py --rule soften \
      --reference weights --runs runs/efficientnet_b0_160_soften runs/legacy_xception_160_soften
  PYTHONPATH=. .venv/bin/python notes/scripts/ship_check.py --rule soup \
      --reference weights --runs runs/soup_efficientnet_b0 runs/soup_legacy_xception
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from robustness import degrade  # the blur robustness.py and soft_val.py apply


def main() -> int:
    import torch

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.metrics import fit_temperature, roc_auc, sigmoid
    from deepfake_demo.training.config import TrainConfig, member_spec
    from deepfake_demo.training.dataset import ffpp_val_auc, load_train_data
    from deepfake_demo.training.loop import load_run
                                                predict_logits)

    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--rule", required=True, choices=["input-size", "ffpp-selection", "soften", "soup"])
    ap.add_argument("--cache-size", type=int, default=160)
    args = ap.parse_args()
    torch.set_num_threads(2)

    d_ref = load_train_data(TrainConfig(input_size=160, cache_size=160, ffhq_frac=0.2))
    d_new = load_train_data(TrainConfig(input_size=args.cache_size, cache_size=args.cache_size, ffhq_frac=0.2))
    assert d_ref.val_groups == d_new.val_groups and np.array_equal(d_ref.val_labels, d_new.val_labels)
    y, g = d_ref.val_labels, np.asarray(d_ref.val_groups)
    ffhq = g == "train_real_ffhq"

    # every member's validation logit, calibrated on this split (the shipped ones by their cards' T)
    ref = load_ensemble(args.reference, "cpu")
    blur = args.rule in ("soften", "soup")  # also every crop blurred (sigma 2), scored with the same temperatures
    if blur and args.cache_size != 160:
        ap.error(f"--rule {args.rule} blurs 160 px crops (sigma 2 px, as soft_val.py); leave --cache-size at 160")
    val_blurred = np.stack([degrade(i, "blur", 2.0) for i in d_ref.val_images]) if blur else None
    shipped, shipped_b = {}, {}
    for c, m in zip(ref.cards, ref.models):
        shipped[c.spec.arch] = predict_logits(m, d_ref.val_images, c.spec) / c.spec.temperature
        if blur:
            shipped_b[c.spec.arch] = predict_logits(m, val_blurred, c.spec) / c.spec.temperature
    cand, cand_b = {}, {}
    for rd in args.runs:
        model, cfg, _ = load_run(rd)
        model.half().float()  # what ships is fp16
        lg = predict_logits(model, d_new.val_images, member_spec(cfg))
        t = fit_temperature(y, lg)
        cand[cfg.arch] = lg / t
        if blur:
            cand_b[cfg.arch] = predict_logits(model, val_blurred, member_spec(cfg)) / t

    def figures(zs, temperature=None, threshold=0.5, zs_blur=None):
        """As the app combines members (aggregate.ensemble_probability); a candidate's ensemble
        temperature is fitted on the mean calibrated logit, as fit_ensemble does."""
        if temperature is None:
            temperature = fit_temperature(y, np.mean(zs, axis=0))
        p = ensemble_probability([sigmoid(z) for z in zs], temperature=temperature)
        out = {"auc_whole_split": roc_auc(y, p), "auc_ffpp_utk_part": roc_auc(y[~ffhq], p[~ffhq]),
               "auc_ffpp_part": ffpp_val_auc(y, g, p),
               "ffhq_val_called_fake": verdict_shares(y[ffhq], p[ffhq], threshold)["real"]["FAKE"]}
        if zs_blur is not None:
            pb = ensemble_probability([sigmoid(z) for z in zs_blur], temperature=temperature)
            ff = g == "train_real_ffpp"
            out["blur2_auc_ffpp_part"] = ffpp_val_auc(y, g, pb)
            out["blur2_ffpp_real_called_fake"] = verdict_shares(y[ff], pb[ff], threshold)["real"]["FAKE"]
            out["blur2_fake_called_fake"] = verdict_shares(y[y == 1], pb[y == 1], threshold)["fake"]["FAKE"]
        return out

    r = figures(list(shipped.values()), float(ref.ensemble_card["temperature"]),
                float(ref.ensemble_card["threshold"]), list(shipped_b.values()) if blur else None)
    archs = list(shipped)
    pairs = {"candidate pair": ([cand[a] for a in archs], [cand_b[a] for a in archs] if blur else None)}
    for a in archs:  # swap one member
        pairs[f"candidate {a} + shipped {[b for b in archs if b != a][0]}"] = (
            [cand[b] if b == a else shipped[b] for b in archs],
            [cand_b[b] if b == a else shipped_b[b] for b in archs] if blur else None)
    rows = {}
    for name, (zs, zs_b) in pairs.items():
        c = figures(zs, zs_blur=zs_b)
        ffhq_ok = c["ffhq_val_called_fake"] <= r["ffhq_val_called_fake"] + 0.05
        if args.rule == "soften":
            c["passes"] = bool(c["auc_ffpp_part"] >= r["auc_ffpp_part"] - 0.01
                               and c["auc_whole_split"] >= r["auc_whole_split"] - 0.01 and ffhq_ok
                               and c["blur2_ffpp_real_called_fake"] <= 0.25
                               and c["blur2_auc_ffpp_part"] >= r["blur2_auc_ffpp_part"])
        elif args.rule == "soup":
            c["passes"] = bool(c["auc_ffpp_part"] >= r["auc_ffpp_part"] + 0.005
                               and c["auc_whole_split"] >= r["auc_whole_split"] - 0.005 and ffhq_ok
                               and c["blur2_ffpp_real_called_fake"] <= r["blur2_ffpp_real_called_fake"] + 0.03
                               and c["blur2_auc_ffpp_part"] >= r["blur2_auc_ffpp_part"] - 0.005)
        elif args.rule == "input-size":
            c["passes"] = bool(c["auc_whole_split"] >= r["auc_whole_split"] + 0.01 and ffhq_ok)
        else:
            c["passes"] = bool(c["auc_ffpp_part"] >= r["auc_ffpp_part"] + 0.015
                               and c["auc_whole_split"] >= r["auc_whole_split"] - 0.01 and ffhq_ok)
        rows[name] = c
    key = "auc_whole_split" if args.rule == "input-size" else "auc_ffpp_part"  # soften, soup: the higher FF++ AUC
    ship = "candidate pair" if rows["candidate pair"]["passes"] else max(
        (n for n in rows if rows[n]["passes"]), key=lambda n: rows[n][key], default=None)
    print(json.dumps({"n": {"ffpp_utk": int((~ffhq).sum()), "ffhq": int(ffhq.sum())},
                      "members_auc": {"shipped": {a: roc_auc(y, z) for a, z in shipped.items()},
                                      "candidate": {a: roc_auc(y, z) for a, z in cand.items()}},
                      "reference": r, "candidates": rows, "ship": ship}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
