"""Export each ensemble member in the layout timm reads from the Hugging Face Hub, so a timm user
needs neither this package nor its card format::

    python -m deepfake_demo.hub_export --weights weights --out hub/

    import timm
    model = timm.create_model("local-dir:hub/efficientnet_b0", pretrained=True).eval()  # or, once uploaded,
    model = timm.create_model("hf-hub:OWNER/NAME", pretrained=True).eval()
    cfg = timm.data.resolve_model_data_config(model)                                    # size, mean, std
    x = timm.data.create_transform(**cfg)(face_crop_pil).unsqueeze(0)
    p_fake = torch.sigmoid(model(x) / temperature)   # temperature: config.json["deepfake_demo"]

Per member, ``OUT/<card name>/`` holds ``config.json`` (``architecture``, ``num_classes`` = 1 and a
``pretrained_cfg`` with the card's input size, mean, std and interpolation; ``crop_pct`` = 1 because
the member is fed a whole face crop, never a centre cut of one), ``model.safetensors`` (the card's
tensors, sha256-checked, in their stored dtype unless ``--dtype`` says otherwise) and ``README.md``
(the Hub model card: licence, limits, how the crop is cut). What timm does not model -- the face
crop's margin, the calibration temperature, the threshold -- travels in ``config.json["deepfake_demo"]``;
timm ignores that key. The ensemble's combination of members stays a feature of this library.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import __version__

__all__ = ["DTYPES", "HubExport", "hub_config", "hub_readme", "export_member", "export_weights", "main"]

DTYPES = ("same", "fp16", "fp32")
"""``same`` keeps each tensor's stored dtype (the shipped weights are fp16); the others cast floats."""

_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"  # the name timm's hub and local-dir loaders look for first
_README = "README.md"


@dataclass(frozen=True)
class HubExport:
    """One exported member: its card name and the folder timm loads (``local-dir:<folder>``)."""

    name: str
    folder: Path
    dtype: str


def _arch_defaults(arch: str) -> dict[str, Any]:
    """The arch's own timm defaults that adapting a checkpoint needs (first conv and classifier names,
    whether the input size is fixed); empty where timm registers no default config for it."""
    import timm

    cfg = timm.get_pretrained_cfg(arch)
    if cfg is None:
        return {}
    return {"first_conv": cfg.first_conv, "classifier": cfg.classifier, "fixed_input_size": cfg.fixed_input_size}


def hub_config(card, arch_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` timm's ``hf-hub:`` / ``local-dir:`` loaders read, for one member card
    (a :class:`~deepfake_demo.models.ModelCard`). ``pretrained_cfg`` holds only fields timm's
    ``PretrainedCfg`` knows (an unknown one would break ``create_model``); ``input_size`` is
    ``[3, S, S]`` in pixels, ``mean`` / ``std`` apply to pixels scaled to [0, 1]."""
    spec = card.spec
    defaults = dict(_arch_defaults(spec.arch) if arch_defaults is None else arch_defaults)
    pretrained_cfg = {
        "input_size": [3, spec.input_size, spec.input_size],
        "interpolation": spec.interpolation,
        "crop_pct": 1.0,  # the whole face crop is the input: resize only, no centre cut
        "crop_mode": "center",
        "mean": list(spec.mean),
        "std": list(spec.std),
        "num_classes": 1,
        "license": "other",  # research / non-commercial, like the data (see README.md)
        "description": f"deepfake_demo ensemble member {card.name}: one logit, evidence that a face "
                       "crop is manipulated",
        **{k: v for k, v in defaults.items() if v is not None},
    }
    info = card.info
    return {
        "architecture": spec.arch,
        "num_classes": 1,
        "label_names": ["fake"],
        "pretrained_cfg": pretrained_cfg,
        "deepfake_demo": {
            "version": __version__,
            "member": card.name,
            "output": "one logit per face crop; P(fake) = sigmoid(logit / temperature)",
            "temperature": spec.temperature,
            "threshold": spec.threshold,
            "crop": "the detected face box made square on its longer side, grown by crop_margin of that "
                    "side (half each way), cut from the RGB frame and resized to input_size "
                    "(deepfake_demo.faces.crop_face; MTCNN boxes)",
            "crop_margin": spec.crop_margin,
            "source_sha256": card.sha256,
            **({"warning": str(info["warning"])} if info.get("warning") else {}),
        },
    }


def hub_readme(card, config: Mapping[str, Any]) -> str:
    """The Hub model card (``README.md``) for one exported member: front matter, how to load and
    feed it, and the member card's licence, intended use and limits."""
    dd = config["deepfake_demo"]
    pc = config["pretrained_cfg"]
    info = card.info
    s = pc["input_size"][1]
    lines = [
        "---",
        "library_name: timm",
        "license: other",
        "pipeline_tag: image-classification",
        "tags: [timm, image-classification, deepfake-detection]",
        "---",
        "",
        f"# {card.name}: one member of the deepfake_demo ensemble",
        "",
    ]
    if dd.get("warning"):
        lines += [f"**{dd['warning']}**", ""]
    lines += [
        f"`{config['architecture']}` with one output logit: evidence that a face crop is manipulated.",
        f"Input: a face crop, {s} x {s} RGB; {dd['crop']} (crop margin {dd['crop_margin']}).",
        f"Normalised with mean {pc['mean']} and std {pc['std']}.",
        f"Calibrated fake probability: `sigmoid(logit / {dd['temperature']})`; threshold {dd['threshold']}.",
        "",
        "```python",
        "import timm, torch",
        'model = timm.create_model("hf-hub:OWNER/NAME", pretrained=True).eval()  # or "local-dir:FOLDER"',
        "cfg = timm.data.resolve_model_data_config(model)",
        "x = timm.data.create_transform(**cfg)(face_crop).unsqueeze(0)  # face_crop: a PIL image cut as above",
        f"p_fake = torch.sigmoid(model(x) / {dd['temperature']})",
        "```",
        "",
        f"Exported by deepfake_demo {dd['version']} (`python -m deepfake_demo.hub_export`) from weights "
        f"with sha256 `{dd['source_sha256']}`; the project's own pipeline (face detection, crop, Grad-CAM, "
        "the ensemble of members) is the `deepfake_demo` package.",
        "",
    ]
    for key, title in (("license", "Licence"), ("intended_use", "Intended use"), ("limits", "Limits"),
                       ("training_data", "Training data")):
        if info.get(key):
            lines += [f"## {title}", "", str(info[key]), ""]
    return "\n".join(lines)


def export_member(card, out_dir: str | os.PathLike, dtype: str = "same") -> HubExport:
    """Write ``out_dir/<card.name>/{config.json, model.safetensors, README.md}`` for one member card,
    after checking (with the library's own loader) that its weights match their sha256 and fit the
    arch. Files already there are replaced."""
    from safetensors.torch import load_file, save_file

    from .models import build_model

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    build_model(card, "cpu")  # raises WeightsError on a sha256 mismatch or tensors that do not fit
    tensors = load_file(str(card.weights_path), device="cpu")
    if dtype != "same":
        import torch

        target = torch.float16 if dtype == "fp16" else torch.float32
        tensors = {k: v.to(target) if v.is_floating_point() else v for k, v in tensors.items()}
    folder = Path(out_dir) / card.name
    folder.mkdir(parents=True, exist_ok=True)
    config = hub_config(card)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / _WEIGHTS), metadata={"format": "pt"})
    (folder / _CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (folder / _README).write_text(hub_readme(card, config))
    return HubExport(card.name, folder, dtype)


def export_weights(source: str | os.PathLike | None, out_dir: str | os.PathLike,
                   names: Sequence[str] | None = None, dtype: str = "same") -> list[HubExport]:
    """Export every member (or those ``names`` selects, by card name or arch) of a weights source
    (a directory or Hub repo id, as :func:`~deepfake_demo.models.resolve_weights_dir` takes it)."""
    from .models import read_cards, resolve_weights_dir

    cards = read_cards(resolve_weights_dir(source), names)
    return [export_member(card, out_dir, dtype) for card in cards]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deepfake_demo.hub_export``; exit status 0, or 2 with a message."""
    p = argparse.ArgumentParser(prog="python -m deepfake_demo.hub_export",
                                description="Write each ensemble member as a folder timm.create_model("
                                            "'local-dir:FOLDER' or 'hf-hub:OWNER/NAME') loads.")
    p.add_argument("--weights", metavar="DIR_OR_HUB_ID",
                   help="weights directory or Hub repo id (default: $DEEPFAKE_DEMO_WEIGHTS or weights/)")
    p.add_argument("--out", required=True, metavar="DIR", help="one folder per member is written here")
    p.add_argument("--names", nargs="+", metavar="NAME", help="only these members (card name or arch)")
    p.add_argument("--dtype", choices=DTYPES, default="same",
                   help="tensor dtype: as stored (default; the shipped weights are fp16), fp16 or fp32")
    args = p.parse_args(argv)
    from .models import NoWeightsError, WeightsError

    try:
        done = export_weights(args.weights, args.out, args.names, args.dtype)
    except (NoWeightsError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for e in done:
        print(f"{e.name}: {e.folder} (timm.create_model('local-dir:{e.folder}', pretrained=True))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
