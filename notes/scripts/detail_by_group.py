"""How soft is each training group, and how far does ``augment.mild_soften`` move the reals?
(notes/experiments/2026-12-07-soften-reals/)

Face detail (``faces.face_detail``, the soft-face warning's measure) on the 160 px crop caches, the
framing it is defined at (``DETAIL_MARGIN``, ``DETAIL_SIZE``): per cached group, the median and the share
below 9 on up to 400 crops; then, on 300 crops of three real groups, the same before and after one draw of
``mild_soften`` each. Needs the caches (``python -m deepfake_demo.training.data``).

  .venv/bin/python notes/scripts/detail_by_group.py [--out notes/logs/detail_by_group.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deepfake_demo.faces import DETAIL_MARGIN, DETAIL_SIZE, face_detail  # noqa: E402
from deepfake_demo.training.augment import mild_soften  # noqa: E402
from deepfake_demo.training.data import CACHE_DIR  # noqa: E402

SOFT = 9.0  # "soft": below the FAKE-called reals' median detail (8.9) rounded up


def _crops(path: Path) -> np.ndarray:
    z = np.load(path)
    return z[next(k for k in z.files if z[k].ndim == 4)]


def _summary(d: np.ndarray) -> dict:
    return {"n": len(d), "median": round(float(np.median(d)), 1), "share_below_9": round(float((d < SOFT).mean()), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    suffix = f"_s{DETAIL_SIZE}_m{DETAIL_MARGIN}.npz"
    out: dict = {"groups": {}, "mild_soften": {}}
    for f in sorted(CACHE_DIR.glob(f"*{suffix}")):
        x = _crops(f)
        idx = np.random.default_rng(0).choice(len(x), min(400, len(x)), replace=False)
        out["groups"][f.name[:-len(suffix)]] = _summary(np.array([face_detail(x[i]) for i in idx]))
    for g in ("train_real_ffpp", "dfdc_real", "train_real_utkface"):
        x = _crops(CACHE_DIR / f"{g}{suffix}")
        rng = np.random.default_rng(0)
        idx = rng.choice(len(x), 300, replace=False)
        after = np.array([face_detail(mild_soften(x[i], rng)) for i in idx])
        out["mild_soften"][g] = {"before": _summary(np.array([face_detail(x[i]) for i in idx])), "after": _summary(after)}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
