"""A uniform "model soup" of each member (notes/experiments/2026-11-23-model-soup/): the weights of the FFHQ fine-tune that
every later CPU fine-tune started from, averaged with its three children (the fine-tunes chosen on FF++-only
validation AUC, with StyleGAN faces, and with soft faces: runs/<arch>_160_{ffsel,gan,soften}/best.pt),
batch-norm statistics then re-estimated (training.averaging.average_checkpoints). Weights fine-tuned from one start sit
in one basin, and their mean often generalises better than any one of them (Wortsman et al., ICML 2022).

Writes runs/soup_<arch>/best.pt (best.pt's format, validation logits included) for
notes/scripts/ship_check.py --rule soup, which decides, on validation only, whether anything ships.

  git show 1ee6d0c:weights/efficientnet_b0.safetensors > runs/efficientnet_b0_ffhq.safetensors
  git show 1ee6d0c:weights/legacy_xception.safetensors > runs/legacy_xception_ffhq.safetensors
  .venv/bin/python notes/scripts/soup.py
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

CHILDREN = ("ffsel", "gan", "soften")


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    import torch
    from safetensors.torch import load_file

    from deepfake_demo.training.averaging import average_checkpoints
    torch.set_num_threads(2)
    for arch in ("efficientnet_b0", "legacy_xception"):
        out = Path(f"runs/soup_{arch}")
        out.mkdir(parents=True, exist_ok=True)
        parent = out / "parent.pt"  # the FFHQ fine-tune's export, fp16 -> fp32, in checkpoint format
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in load_file(f"runs/{arch}_ffhq.safetensors").items()}
        torch.save({"model": state, "epoch": 0}, parent)
        # the soft-face run's config drives the batch-norm re-estimation samples (--ffhq-frac 0.2, --soften-frac 0.15)
        shutil.copy(f"runs/{arch}_160_soften/last.pt", out / "last.pt")
        ingredients = [parent] + [Path(f"runs/{arch}_160_{c}/best.pt") for c in CHILDREN]
        path = average_checkpoints(ingredients, out, bn_samples=2048, out_name="best")
        m = torch.load(path, map_location="cpu", weights_only=False)["metrics"]
        print(f"{arch}: soup of {len(ingredients)} -> {path}: validation AUC {m['val_auc']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
