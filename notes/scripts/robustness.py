"""How the shipped ensemble holds up when a face is degraded the way uploads degrade it
(notes/experiments/2026-11-23-robustness/, and the soften fine-tune's after-ship check).

faces/test crops (cut by the inference crop function, cached at 160 px) are degraded, then scored
by every member and the ensemble as the app scores them: JPEG recompression at the crop's size,
one more H.264 encode of the crop (crf 23, 30, 40: FF++'s c23, heavier, its c40),
downscaling (the face was that small in the frame) and blur. For each condition: ensemble AUC, and
what a user would be told (the app's band) for real and for fake faces. Degrading the crop, not the
whole frame, is an approximation: re-encoding a frame also moves the detector's box a little.
Nothing is chosen on these figures; they describe the shipped weights (notes/logs/robustness.json for the
pair of the FFHQ fine-tune, notes/logs/robustness_soften.json for the pair shipped with the soften EfficientNet,
notes/logs/robustness_xception_224.json for the pair shipped on 2026-12-07 with both members at 224 px).

  .venv/bin/python notes/scripts/robustness.py [--weights weights] [--out F.json]   # one line per condition, then the JSON
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def degrade(img: np.ndarray, kind: str, value: float) -> np.ndarray:
    from deepfake_demo.training.augment import h264, jpeg

    if kind == "jpeg":
        return jpeg(img, int(value))
    if kind == "h264":  # one more H.264 encode at this crf (notes/scripts/reencode_val.py)
        return h264(img, int(value))
    if kind == "face_px":  # the face crop was only this many pixels wide in the source
        h = img.shape[0]
        small = cv2.resize(img, (int(value), int(value)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (h, h), interpolation=cv2.INTER_CUBIC)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), value)
    return img


CONDITIONS = [("none", 0), ("jpeg", 90), ("jpeg", 70), ("jpeg", 50), ("jpeg", 30),
              ("h264", 23), ("h264", 30), ("h264", 40),  # one more encode: FF++'s c23, heavier, its c40
              ("face_px", 112), ("face_px", 80), ("face_px", 56), ("blur", 1.0), ("blur", 2.0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = ap.parse_args()
    import functools

    import torch

    from deepfake_demo.evaluate import ENSEMBLE, evaluate_crops
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.data import TEST_GROUPS

    torch.set_num_threads(2)
    ens = load_ensemble(args.weights, "cpu")
    thr = ens.threshold()
    rows, n = {}, None
    for kind, value in CONDITIONS:
        res = evaluate_crops(ens, TEST_GROUPS, thr, transform=functools.partial(degrade, kind=kind, value=value))
        m, v = res["metrics"][ENSEMBLE], res["metrics"][ENSEMBLE]["verdicts"]
        n = res["labels"]
        name = kind if kind == "none" else f"{kind} {value:g}"
        rows[name] = {"auc": round(m["auc"], 4),
                      "members_auc": {k: round(res["metrics"][k]["auc"], 4) for k in res["metrics"] if k != ENSEMBLE},
                      "mean_p_real": round(m["mean_prob_real"], 3), "mean_p_fake": round(m["mean_prob_fake"], 3),
                      "real_called_FAKE": round(v["real"]["FAKE"], 3), "real_called_REAL": round(v["real"]["REAL"], 3),
                      "fake_called_FAKE": round(v["fake"]["FAKE"], 3), "fake_called_REAL": round(v["fake"]["REAL"], 3)}
        print(name, rows[name], flush=True)
    out = json.dumps({"weights": args.weights, "n": int(len(n)), "n_fake": int(n.sum()),
                      "threshold": thr, "conditions": rows}, indent=1)
    print(out)
    if args.out:
        args.out.write_text(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
