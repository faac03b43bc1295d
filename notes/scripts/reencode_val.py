"""Does one more H.264 encode make a face look more fake to an ensemble
(notes/experiments/2026-12-07-recompress-reals/)?

The validation split of ``faces/train`` that soft_val.py uses (valsplit.setup: 160 px crops) is scored as
it is and after one H.264 encode of the crop (``augment.h264`` at crf 23, FF++'s c23, at crf 30, 35, and 40,
FF++'s c40; 35 and 40 were added for the app's heavy-compression check, notes/app.md). For FF++ originals,
UTKFace photos and the FF++ fakes (at most 250 of each, drawn with a fixed seed): the mean ensemble
probability, the shares called FAKE and REAL (the ensemble's threshold with the app's band, as
``aggregate.band_edges`` draws them), and the mean change per crop against the crop as it is. No test crop
is read.

  .venv/bin/python notes/scripts/reencode_val.py [--weights weights] [--out notes/logs/reencode_val.json]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402
from robustness import degrade  # noqa: E402
from valsplit import save, score, setup  # noqa: E402

CONDITIONS = {"none": None, **{f"h264 crf {crf}": ("h264", crf) for crf in (23, 30, 35, 40)}}


def main() -> int:
    from deepfake_demo.aggregate import band_edges, ensemble_probability
    from deepfake_demo.config import DECISION
    from deepfake_demo.training.config import FAKE_GROUPS
    args, data, y, g, ens = setup(description=__doc__)
    real_at, fake_at = band_edges(ens.threshold(), DECISION.uncertain_band)
    rng = np.random.default_rng(0)
    parts = {"ffpp_original": np.nonzero(g == "train_real_ffpp")[0], "utkface": np.nonzero(g == "train_real_utkface")[0],
             "ffpp_fake": np.nonzero(np.isin(g, FAKE_GROUPS))[0]}
    parts = {k: np.sort(rng.choice(v, min(250, len(v)), replace=False)) for k, v in parts.items()}
    rows, base = {}, {}
    for name, f in CONDITIONS.items():
        rows[name] = {}
        for part, idx in parts.items():
            ims = data.val_images[idx] if f is None else np.stack([degrade(data.val_images[i], *f) for i in idx])
            probs = {c.name: score(ens, c, ims).probs.astype(np.float64) for c in ens.cards}
            p = ensemble_probability(probs, temperature=ens.temperature())
            if f is None:
                base[part] = p
            rows[name][part] = {"n": int(len(idx)), "mean_p": round(float(p.mean()), 4),
                                "called_FAKE": round(float((p >= fake_at).mean()), 3),
                                "called_REAL": round(float((p <= real_at).mean()), 3),
                                "mean_change": round(float((p - base[part]).mean()), 4)}
        print(name, rows[name], flush=True)
    out = {"weights": args.weights, "fake_at": round(fake_at, 4), "conditions": rows}
    save(args, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
