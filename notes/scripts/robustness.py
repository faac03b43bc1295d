"""How the shipped ensemble holds up when a face is degraded the way uploads degrade it (2026-11-23, fourth session).

faces/test crops (cut by the inference crop function, cached at 160 px) are degraded, then scored
by every member and the ensemble as the app scores them: JPEG recompression at the crop's size,
downscaling (the face was that small in the frame) and blur. For each condition: ensemble AUC, and
what a user would be told (the app's band) for real and for fake faces. Degrading the crop, not the
whole frame, is an approximation: re-encoding a frame also moves the detector's box a little.
Nothing is chosen on these figures; they describe the shipped weights.

  PYTHONPATH=. .venv/bin/python notes/scripts/robustness.py [--weights weights]
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np


def degrade(img: np.ndarray, kind: str, value: float) -> np.ndarray:
    from deepfake_demo.training.augment import jpeg

    if kind == "jpeg":
        return jpeg(img, int(value))
    if kind == "face_px":  # the face crop was only this many pixels wide in the source
        h = img.shape[0]
        small = cv2.resize(img, (int(value), int(value)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (h, h), interpolation=cv2.INTER_CUBIC)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), value)
    return img


CONDITIONS = [("none", 0), ("jpeg", 90), ("jpeg", 70), ("jpeg", 50), ("jpeg", 30),
              ("face_px", 112), ("face_px", 80), ("face_px", 56), ("blur", 1.0), ("blur", 2.0)]


def main() -> int:
    import torch

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.augment import resize_to
    from deepfake_demo.training.data import load_group
    from deepfake_demo.training.metrics import roc_auc

    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="weights")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ens = load_ensemble(args.weights, "cpu")
    groups = ["test_real_ffpp", "test_fake_Deepfakes", "test_fake_Face2Face", "test_fake_FaceSwap",
              "test_fake_NeuralTextures"]
    sets = [load_group(g, size=160, margin=ens.cards[0].spec.crop_margin) for g in groups]
    assert all(c.spec.crop_margin == ens.cards[0].spec.crop_margin for c in ens.cards)
    images = np.concatenate([s.images for s in sets])
    labels = np.concatenate([s.labels for s in sets])
    thr = ens.threshold()
    rows = {}
    for kind, value in CONDITIONS:
        deg = np.stack([degrade(im, kind, value) for im in images])
        probs = {}
        for card in ens.cards:
            crops = np.stack([resize_to(im, card.spec.input_size) for im in deg])
            probs[card.name] = ens.run(card.name, crops, with_cam=False, batch_size=32).probs.astype(np.float64)
        p = ensemble_probability(dict(probs), temperature=ens.temperature())
        v = verdict_shares(labels, p, thr)
        name = kind if kind == "none" else f"{kind} {value:g}"
        rows[name] = {"auc": round(roc_auc(labels, p), 4),
                      "members_auc": {k: round(roc_auc(labels, q), 4) for k, q in probs.items()},
                      "mean_p_real": round(float(p[labels == 0].mean()), 3),
                      "mean_p_fake": round(float(p[labels == 1].mean()), 3),
                      "real_called_FAKE": round(v["real"]["FAKE"], 3), "real_called_REAL": round(v["real"]["REAL"], 3),
                      "fake_called_FAKE": round(v["fake"]["FAKE"], 3), "fake_called_REAL": round(v["fake"]["REAL"], 3)}
        print(name, rows[name], flush=True)
    print(json.dumps({"weights": args.weights, "n": int(len(labels)), "n_fake": int(labels.sum()),
                      "threshold": thr, "conditions": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
