"""Distillation from a shipped member (``--teacher``): the student learns from the labels and, beside
them, from the teacher's calibrated probability on the very same augmented crop.

Why: the Xception member has no ImageNet start (no such weights are reachable here) and from-scratch
training on this data is what limits it; the EfficientNet-Lite member started from ImageNet and tells
sources apart better. Its soft probability on each self-blend, fake and real crop carries what its
features learned (how fake *this* blend looks, not only "fake"), which hard labels do not.

The loss is ``(1 - w) * BCE(student, label) + w * BCE(student, p_teacher)`` with
``p_teacher = sigmoid(teacher_logit / T_teacher)``, the teacher's temperature from its card: a
calibrated target, so ``w`` trades two probabilities of the same meaning.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Teacher", "load_teacher"]


@dataclass
class Teacher:
    name: str
    model: Any
    spec: Any  # ModelSpec: how the teacher wants its crops normalised, and its card's temperature

    @property
    def temperature(self) -> float:
        return float(self.spec.temperature or 1.0)

    def probability(self, crops_uint8, device: str):
        """The teacher's calibrated probability (N,) for uint8 crops (N, S, S, 3) already cut at its margin,
        resized to its input size when the student's differs."""
        import torch
        import torch.nn.functional as F

        from ..models import to_model_input

        with torch.no_grad():
            x = to_model_input(crops_uint8, self.spec, device)
            size = self.spec.input_size
            if x.shape[-1] > size:  # area: each teacher pixel the mean of the student pixels it covers
                x = F.interpolate(x, size=(size, size), mode="area")
            elif x.shape[-1] < size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            return torch.sigmoid(self.model(x).float().view(-1) / self.temperature)


def load_teacher(card_path: str | Path, student_spec, device: str = "cpu") -> Teacher:
    """The member that a model card (``weights/<name>.json``) describes, sha256-checked and frozen. Refused
    with a message if it was cut at another crop margin than the student's (the same crop would then
    show each model a different part of the face)."""
    from ..cards import read_cards
    from ..models import build_model

    p = Path(card_path)
    if p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    if not p.is_file():
        raise ValueError(f"--teacher {card_path}: no model card there; give an exported member's .json "
                         "(e.g. weights/tf_efficientnet_lite0.json)")
    try:
        info = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--teacher {card_path}: not a readable model card ({exc})") from None
    if not isinstance(info, dict) or "arch" not in info:
        raise ValueError(f"--teacher {card_path}: {p.name} is not a member's card (no arch)")
    card = read_cards(p.parent, [str(info.get("name") or p.stem)])[0]
    if abs(card.spec.crop_margin - student_spec.crop_margin) > 1e-6:
        raise ValueError(f"--teacher {card.name} was trained on crops with margin {card.spec.crop_margin:g}, "
                         f"the student on {student_spec.crop_margin:g}: give --crop-margin "
                         f"{card.spec.crop_margin:g} or another teacher")
    model = build_model(card, device)
    return Teacher(card.name, model, card.spec)
