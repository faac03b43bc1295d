"""The ship rule for the --gan-frac fine-tune (committed before the run).

Scores the shipped ensemble (--reference, a weights directory) and the
candidate runs' best checkpoints (--runs) on ONE validation split: the
FF++/UTKFace part every member has used, plus the validation quarters of the
FFHQ photos and of the StyleGAN/StyleGAN2 faces (``training.data.synthetic_split``).
faces/test, the held-out quarters and the videos play no part.

The candidate ships only if all three hold:
  1. ensemble AUC on the FF++/UTKFace part >= the reference's - 0.01;
  2. ensemble AUC of StyleGAN faces against FFHQ photos (validation quarters) >= 0.75;
  3. share of the FFHQ validation photos called FAKE (the app's band) <= the reference's + 0.05.

  PYTHONPATH=. .venv/bin/python notes/scripts/ship_check_gan.py --reference runs/shipped_before \
      --runs runs/efficientnet_b0_160_gan runs/legacy_xception_160_gan
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> int:
    import torch

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.metrics import fit_temperature, roc_auc, sigmoid
    from deepfake_demo.training.config import TrainConfig, member_spec
    from deepfake_demo.training.loop import load_run, predict_logits
    from deepfake_demo.training.dataset import load_train_data
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)

    data = load_train_data(TrainConfig(input_size=160, ffhq_frac=0.2, gan_frac=0.1))
    y, g = data.val_labels, np.asarray(data.val_groups)
    synth = np.isin(g, ["train_real_ffhq", "train_fake_stylegan", "train_fake_stylegan2"])
    old, ffhq = ~synth, g == "train_real_ffhq"

    ref = load_ensemble(args.reference, "cpu")
    # as the app combines them: each member calibrated by its card, then the ensemble card's temperature
    p_ref = ensemble_probability([sigmoid(predict_logits(m, data.val_images, c.spec) / c.spec.temperature)
                                  for c, m in zip(ref.cards, ref.models)],
                                 temperature=float(ref.ensemble_card["temperature"]))
    thr_ref = float(ref.ensemble_card["threshold"])

    zs = []
    for rd in args.runs:
        model, cfg, _ = load_run(rd)
        model.half().float()  # what ships is fp16
        lg = predict_logits(model, data.val_images, member_spec(cfg))
        zs.append(lg / fit_temperature(y, lg))
    zc = np.mean(zs, axis=0)
    p_new = sigmoid(zc / fit_temperature(y, zc))

    def figures(p, thr):
        return {"auc_ffpp_utk_part": roc_auc(y[old], p[old]), "auc_stylegan_vs_ffhq": roc_auc(y[synth], p[synth]),
                "ffhq_val_called_fake": verdict_shares(y[ffhq], p[ffhq], thr)["real"]["FAKE"],
                "auc_whole_split": roc_auc(y, p)}

    r, c = figures(p_ref, thr_ref), figures(p_new, 0.5)
    rules = {"1_ffpp_utk_auc": c["auc_ffpp_utk_part"] >= r["auc_ffpp_utk_part"] - 0.01,
             "2_stylegan_auc": c["auc_stylegan_vs_ffhq"] >= 0.75,
             "3_ffhq_fake_share": c["ffhq_val_called_fake"] <= r["ffhq_val_called_fake"] + 0.05}
    print(json.dumps({"n": {"ffpp_utk": int(old.sum()), "ffhq": int(ffhq.sum()), "gan": int((synth & (y == 1)).sum())},
                      "reference": r, "candidate": c, "rules": rules, "ship": all(rules.values())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
