"""How many FF++ fakes are frames of a validation original's video? (notes/experiments/2026-12-06-fake-twins/)

``--ffpp-drop-twins 0.93`` keeps the training frames of validation's real videos out of training, but
the fakes made from those videos stay: a run then sees those people only as fakes, and its validation
reals are harder than faces/test's (whose people training never saw at all). For each FF++ method this
gives the share of crops at or above each thumbnail-correlation cut (``training.data.thumbnails``) to
the nearest crop of another part: training fakes to validation originals (what
``--ffpp-drop-fake-twins`` removes), training fakes to training originals (the real/fake pairs training
learns from), validation fakes to training fakes, and faces/test's fakes to training fakes and to
faces/test's originals. No model, no labels beyond the folders.

With ``--weights DIR``, also the ensemble's verdicts on validation's FF++ originals that have no real twin
in training (below :data:`~deepfake_demo.training.dataset.TWIN_CUT`), split by whether a training fake of
a method sits at the cut or above (the person is in training as a fake) or not: is that why the shipped
pair calls more of them FAKE than faces/test's originals?

  .venv/bin/python notes/scripts/fake_twins.py [--weights weights] [--out notes/logs/fake_twins.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root

import numpy as np  # noqa: E402

from deepfake_demo.training.config import FAKE_GROUPS, TrainConfig, member_spec  # noqa: E402
from deepfake_demo.training.data import load_group, thumbnails  # noqa: E402
from deepfake_demo.training.dataset import TWIN_CUT, group_split  # noqa: E402

CUTS = (0.90, 0.93, 0.95)


def verdicts(weights: Path, cfg: TrainConfig, real_twin: np.ndarray, fake_twin: np.ndarray) -> dict:
    """Verdict shares of ``weights``' ensemble on validation's FF++ originals, by kind of twin in training."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ship_check import ensemble_val_logits

    from deepfake_demo.cards import read_ensemble_card
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.training.metrics import sigmoid

    z, y, groups = ensemble_val_logits(weights, cfg)
    orig = np.asarray(groups) == "train_real_ffpp"
    p, y = sigmoid(z)[orig], y[orig]
    thr = float(read_ensemble_card(weights).threshold)
    parts = {"real twin in training": real_twin >= TWIN_CUT,
             "no real twin, a fake of its video in training": (real_twin < TWIN_CUT) & (fake_twin >= TWIN_CUT),
             "no real twin, no fake of its video in training": (real_twin < TWIN_CUT) & (fake_twin < TWIN_CUT)}
    return {name: {"n": int(m.sum()), **({k: round(v, 3) for k, v in verdict_shares(y[m], p[m], thr)["real"].items()}
                                         if m.any() else {})} for name, m in parts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    ap.add_argument("--weights", type=Path, help="also the verdicts of this ensemble (see above)")
    args = ap.parse_args()
    cfg = TrainConfig()  # the random split every member shares (SPLIT_SEED), 160 px crops
    margin = member_spec(cfg).crop_margin

    def train_val(group: str):
        cs = load_group(group, cfg.cache_size, margin)
        tr, va = group_split(len(cs), cfg)
        return thumbnails(cs.images[tr]), thumbnails(cs.images[va])

    def share_at(sim) -> dict:
        return {f"{c:.2f}": round(float((sim >= c).mean()), 3) for c in CUTS}

    real_tr, real_va = train_val("train_real_ffpp")
    test_real = thumbnails(load_group("test_real_ffpp", cfg.cache_size, margin).images)
    out: dict = {"cuts": list(CUTS)}
    fake_near_val = np.full(len(real_va), -1.0)  # each validation original's nearest training fake
    for g in FAKE_GROUPS:
        method = g.split("_", 2)[-1]
        fake_tr, fake_va = train_val(g)
        fake_near_val = np.maximum(fake_near_val, (real_va @ fake_tr.T).max(1))
        test_fake = thumbnails(load_group(f"test_fake_{method}", cfg.cache_size, margin).images)
        out[method] = {
            "n_train_fakes": len(fake_tr),
            "train_fakes_near_a_validation_original": share_at((fake_tr @ real_va.T).max(1)),
            "train_fakes_near_a_training_original": share_at((fake_tr @ real_tr.T).max(1)),
            "validation_fakes_near_a_training_fake": share_at((fake_va @ fake_tr.T).max(1)),
            "test_fakes_near_a_training_fake": share_at((test_fake @ fake_tr.T).max(1)),
            "test_fakes_near_a_test_original": share_at((test_fake @ test_real.T).max(1)),
        }
        print(method, json.dumps(out[method]), flush=True)
    if args.weights:
        out["verdicts"] = verdicts(args.weights, cfg, (real_va @ real_tr.T).max(1), fake_near_val)
        print(json.dumps(out["verdicts"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
