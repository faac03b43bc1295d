"""Do self-blends made at a higher resolution than the model's crop, then downscaled, still read as FAKE?

Training makes every self-blend on the 160 px cached crop. A real face swap (and the project's own
examples, blended on the 512 px photo) is blended at the source's resolution and only then shrunk to
the crop, which shrinks its blending boundary and colour seams with it. This scores, with the shipped
members and ensemble, the held-out FF++ originals of faces/test (201 crops, 160 px, from the
training-data cache) four ways: as they are; blended at 160 px (as in training); and, for each scale s,
upscaled s times (bicubic), blended there (landmarks scaled alike), and shrunk back (area); with the
upscale-and-shrink of the untouched crop as each scale's real control. Each crop's blend uses the same
seed at every scale.

    .venv/bin/python -m deepfake_demo.training.data test_real_ffpp
    .venv/bin/python notes/experiments/2026-12-03-blend-scale/blend_scale.py --out notes/experiments/2026-12-03-blend-scale/result.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root: runs without PYTHONPATH

import cv2
import numpy as np


def main() -> int:
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.metrics import roc_auc
    from deepfake_demo.training.sbi import self_blend

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/cache/test_real_ffpp_s160_m0.3.npz"))
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.6, 3.0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--example-masks", action="store_true",
                    help="only: how much of the astronaut photo each self-blend seed changes (the examples' seeds "
                         "3 and 11, then others), as examples/make_examples.py blends it")
    args = ap.parse_args()
    if args.example_masks:
        return example_masks()
    if not args.cache.is_file():
        ap.error(f"{args.cache} not found: run python -m deepfake_demo.training.data test_real_ffpp first")
    cache = np.load(args.cache)
    images, lms = cache["images"], cache["landmarks"].astype(np.float32)
    size = images.shape[1]

    def blend(img, lm, i):
        return self_blend(img, lm, np.random.default_rng(1000 + i))[0]

    def at_scale(img, lm, s, i, do_blend):
        big = cv2.resize(img, (round(size * s),) * 2, interpolation=cv2.INTER_CUBIC)
        if do_blend:
            big = blend(big, lm * s, i)
        return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)

    sets = {"real": images, "blend_1": np.stack([blend(im, lm, i) for i, (im, lm) in enumerate(zip(images, lms))])}
    for s in args.scales:
        sets[f"real_{s:g}"] = np.stack([at_scale(im, lm, s, i, False) for i, (im, lm) in enumerate(zip(images, lms))])
        sets[f"blend_{s:g}"] = np.stack([at_scale(im, lm, s, i, True) for i, (im, lm) in enumerate(zip(images, lms))])

    ens = load_ensemble(args.weights)
    probs = {}
    for name, crops in sets.items():
        member = {}
        for m, card in zip(ens.names, ens.cards):
            x = crops if card.spec.input_size == size else np.stack(
                [cv2.resize(c, (card.spec.input_size,) * 2, interpolation=cv2.INTER_AREA) for c in crops])
            member[m] = ens.score_member(m, x, with_cam=False).probs
        member["ensemble"] = ens.combine({m: member[m] for m in ens.names})
        probs[name] = member
    rows = {}
    for scale in ["1"] + [f"{s:g}" for s in args.scales]:
        real = probs["real" if scale == "1" else f"real_{scale}"]
        fake = probs[f"blend_{scale}"]
        rows[scale] = {m: {"auc": roc_auc(np.r_[np.zeros(len(real[m])), np.ones(len(fake[m]))], np.r_[real[m], fake[m]]),
                           "fake_called_fake": float((fake[m] >= 0.65).mean()),
                           "median_fake_p": float(np.median(fake[m])), "median_real_p": float(np.median(real[m]))}
                       for m in real}
    result = {"n": int(len(images)), "cache": str(args.cache), "weights": args.weights, "by_blend_scale": rows,
              "note": "AUC of blended crops against the same crops unblended, resampled alike; "
                      "fake_called_fake: share at probability >= 0.65 (the FAKE side of the uncertain band)"}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def example_masks() -> int:
    """Mask share of the photo, blend strength and mean change inside the mask, per seed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))
    import make_examples

    from deepfake_demo.training.sbi import self_blend

    real = make_examples.astronaut()
    lm = make_examples.landmarks(real)
    for seed in (*make_examples.SEEDS.values(), 1, 2, 4, 5, 6, 7):
        blended, mask = self_blend(real, lm, np.random.default_rng(seed))
        inside = mask > 0.05
        change = np.abs(blended.astype(np.float32) - real).mean(-1)[inside].mean()
        print(f"seed {seed:2d}: mask covers {inside.mean():.1%} of the photo, strength {mask.max():.2f}, "
              f"mean change inside {change:.1f} grey levels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
