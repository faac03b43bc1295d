"""Build the timm ensemble from model cards, load safetensors weights from a
local directory or the Hugging Face Hub, and score face crops with a Grad-CAM
map from the same forward pass."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .config import WEIGHTS_ENV, ModelSpec, spec_from_card

__all__ = [
    "NoWeightsError",
    "WeightsError",
    "ModelCard",
    "MemberOutput",
    "Ensemble",
    "DEFAULT_WEIGHTS_DIR",
    "resolve_weights_dir",
    "read_cards",
    "sha256_file",
    "build_model",
    "load_ensemble",
    "write_card",
    "ENSEMBLE_CARD",
    "read_ensemble_card",
    "card_threshold",
    "to_model_input",
    "resolve_device",
]

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

HOW_TO_GET_WEIGHTS = (
    "train them with `python -m deepfake_demo.train` (see README, 'Training'), "
    f"or point --weights / ${WEIGHTS_ENV} at a directory or Hugging Face Hub repo id that holds "
    "*.safetensors files with their model cards (*.json)"
)


class NoWeightsError(RuntimeError):
    """No trained weights were found where we looked."""


class WeightsError(RuntimeError):
    """Weights were found but cannot be trusted or loaded (bad card, hash mismatch)."""


@dataclass(frozen=True)
class ModelCard:
    """One ensemble member as its card describes it."""

    name: str
    spec: ModelSpec
    weights_path: Path
    sha256: str
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def warning(self) -> str | None:
        w = self.info.get("warning")
        return str(w) if w else None


def resolve_device(device: str | None) -> str:
    """"auto" (or None): CUDA when there is a GPU, else the CPU; "cpu" / "cuda[:N]" as given, refused
    with a message where no GPU is; anything else refused."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise RuntimeError(f"unknown device {device!r}; use cpu or cuda")
    return device


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_weights_dir(source: str | os.PathLike | None = None) -> Path:
    """A local directory with the weights and cards.

    ``source`` (or ``$DEEPFAKE_DEMO_WEIGHTS``, else ``weights/``) is a directory,
    or a Hub repo id ``owner/name[@revision]`` fetched with
    ``huggingface_hub.snapshot_download``, which honours ``HF_HOME`` /
    ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1``.
    """
    src = str(source) if source else os.environ.get(WEIGHTS_ENV) or str(DEFAULT_WEIGHTS_DIR)
    path = Path(src).expanduser()
    if path.is_dir():
        return path
    repo, _, revision = src.partition("@")
    if path.exists() or not _HUB_ID.match(repo):
        raise NoWeightsError(f"weights directory not found: {src}; {HOW_TO_GET_WEIGHTS}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(
                repo_id=repo,
                revision=revision or None,
                allow_patterns=["*.safetensors", "*.json", "*.md"],
            )
        )
    except LocalEntryNotFoundError:
        raise NoWeightsError(
            f"Hub repo {repo!r} is not in the local cache and the Hub cannot be reached "
            "(offline mode or no network); download it once with network access"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise NoWeightsError(f"could not fetch weights from Hub repo {repo!r}: {exc}") from None


def read_cards(weights_dir: str | os.PathLike, names: Sequence[str] | None = None) -> list[ModelCard]:
    """Model cards (``*.json`` with an ``arch`` key) in a directory, sorted by name.
    ``names`` selects members by card name or arch."""
    d = Path(weights_dir)
    cards: list[ModelCard] = []
    for p in sorted(d.glob("*.json")):
        try:
            info = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"model card {p.name} is not valid JSON: {exc}") from None
        if not isinstance(info, dict) or "arch" not in info:
            continue
        name = str(info.get("name") or p.stem)
        if names and name not in names and info["arch"] not in names:
            continue
        wfile = d / str(info.get("weights_file") or f"{p.stem}.safetensors")
        if not wfile.is_file():
            raise NoWeightsError(f"model card {p.name} names {wfile.name}, which is missing; {HOW_TO_GET_WEIGHTS}")
        if info.get("trained") is False:
            raise WeightsError(f"{p.name} describes untrained weights; refusing to give verdicts from them")
        try:
            spec = spec_from_card(info)
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"model card {p.name} is incomplete: {exc}") from None
        cards.append(ModelCard(name, spec, wfile, str(info.get("sha256", "")), info))
    if not cards:
        which = f" for {', '.join(names)}" if names else ""
        raise NoWeightsError(f"no trained weights found in {d}{which}; {HOW_TO_GET_WEIGHTS}")
    return cards


ENSEMBLE_CARD = "ensemble.json"
"""Calibration of the members together (no ``arch`` key, so not a member card)."""


def read_ensemble_card(weights_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``ensemble.json`` in a weights directory: ``members`` (card names), the
    ``temperature`` that divides the mean calibrated logit (fitted on
    validation) and the ``threshold`` on the result. None if absent."""
    p = Path(weights_dir) / ENSEMBLE_CARD
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
        info["members"] = sorted(str(m) for m in info["members"])
        info["temperature"] = float(info["temperature"])
        info["threshold"] = float(info["threshold"])
        if "weights" in info:  # fitted on validation; older cards have none (equal weights)
            info["weights"] = {str(k): float(v) for k, v in info["weights"].items()}
            if sorted(info["weights"]) != info["members"] or min(info["weights"].values()) < 0 \
                    or not sum(info["weights"].values()) > 0:
                raise ValueError("weights must give each member a weight >= 0, not all zero")
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{ENSEMBLE_CARD} is not a valid ensemble card: {exc}") from None
    if not (info["temperature"] > 0 and 0 < info["threshold"] < 1):
        raise WeightsError(f"{ENSEMBLE_CARD}: temperature must be > 0 and threshold in (0, 1)")
    return info


def _same_members(ens_card: Mapping[str, Any] | None, names: Sequence[str]) -> bool:
    return bool(ens_card) and sorted(names) == ens_card["members"]


def _stale_members(ens_card: Mapping[str, Any], cards: Sequence[ModelCard]) -> list[str]:
    """Members whose weights changed since the ensemble card was fitted."""
    shas = ens_card.get("member_sha256") or {}
    return [c.name for c in cards if c.name in shas and shas[c.name] != c.sha256]


def card_threshold(cards: Sequence[ModelCard], ens_card: Mapping[str, Any] | None = None,
                   names: Sequence[str] | None = None) -> float:
    """The decision threshold when none is given, from the cards. For exactly
    the members the ensemble card was fitted on, its threshold; otherwise (a
    subset, or no ensemble card) the members' own thresholds combined like
    their probabilities (:func:`~deepfake_demo.aggregate.ensemble_probability`)."""
    from .aggregate import ensemble_probability

    chosen = [c for c in cards if not names or c.name in names]
    if _same_members(ens_card, [c.name for c in chosen]):
        return float(ens_card["threshold"])
    return float(ensemble_probability([np.array([c.spec.threshold]) for c in chosen])[0])


def write_card(path: str | os.PathLike, spec: ModelSpec, weights_file: str | os.PathLike, **info: Any) -> dict:
    """Write a JSON model card for ``weights_file`` (sha256 computed here)."""
    w = Path(weights_file)
    card = {
        "name": Path(path).stem,
        "arch": spec.arch,
        "input_size": spec.input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "interpolation": spec.interpolation,
        "crop_margin": spec.crop_margin,
        "temperature": spec.temperature,
        "threshold": spec.threshold,
        "weights_file": w.name,
        "sha256": sha256_file(w),
        **info,
    }
    Path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def build_model(card: ModelCard, device: str = "cpu"):
    """Create ``timm.create_model(arch, pretrained=False, num_classes=1)`` and load
    the card's safetensors weights after checking their sha256. Never unpickles."""
    import timm
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not re.fullmatch(r"[0-9a-f]{64}", card.sha256):
        raise WeightsError(f"model card {card.name} has no valid sha256 for {card.weights_path.name}; "
                           "refusing weights whose integrity cannot be checked")
    actual = sha256_file(card.weights_path)
    if actual != card.sha256:
        raise WeightsError(
            f"{card.weights_path.name}: sha256 {actual[:12]}... does not match its card "
            f"({card.sha256[:12]}...); the file is corrupt or not the one the card describes"
        )
    try:
        model = timm.create_model(card.spec.arch, pretrained=False, num_classes=1)
    except RuntimeError as exc:  # unknown arch
        raise WeightsError(f"{card.name}: timm cannot build {card.spec.arch!r}: {exc}") from None
    try:
        state = load_file(str(card.weights_path), device="cpu")
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except (RuntimeError, OSError, ValueError, SafetensorError) as exc:
        raise WeightsError(f"{card.weights_path.name} does not fit {card.spec.arch}: {str(exc)[:300]}") from None
    model.eval().requires_grad_(False)
    model = model.to(device=torch.device(device), memory_format=torch.channels_last)
    return model


@dataclass(frozen=True)
class MemberOutput:
    """One member's output for N crops: raw logits (N,), calibrated fake
    probabilities (N,), and Grad-CAM maps (N, h, w) in [0, 1] at the member's
    feature resolution (None when not asked for)."""

    logits: np.ndarray
    probs: np.ndarray
    cams: np.ndarray | None = None


class _HeadOnly(nn.Module):
    """What Grad-CAM sees: feature map -> identity (the CAM target layer) -> the
    model's pooling + classifier. Backpropagating through this module reaches
    only the head, never the backbone."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.features = nn.Identity()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.features(feats))


def to_model_input(crops, spec: ModelSpec, device) -> torch.Tensor:
    """Crops (N, S, S, 3) RGB uint8, a numpy array or a tensor -> normalised float (N, 3, S, S),
    channels-last, on ``device``: what every member is fed, in inference and in training."""
    x = crops if isinstance(crops, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(crops))
    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


class Ensemble:
    """The loaded members. ``run`` scores crops that were cut to each member's spec."""

    def __init__(self, cards: Sequence[ModelCard], models: Sequence[Any], device: str, source: Path,
                 ensemble_card: Mapping[str, Any] | None = None):
        self.cards = list(cards)
        self.models = list(models)
        self.device = device
        self.source = source
        self.ensemble_card = ensemble_card

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cards]

    @property
    def warnings(self) -> list[str]:
        return [f"{c.name}: {c.warning}" for c in self.cards if c.warning]

    def threshold(self, names: Sequence[str] | None = None) -> float:
        """The decision threshold the cards give for these members (see :func:`card_threshold`)."""
        return card_threshold(self.cards, self.ensemble_card, names)

    def temperature(self, names: Sequence[str] | None = None) -> float:
        """The ensemble temperature for these members (1 where none was fitted for them)."""
        chosen = self.names if not names else [n for n in self.names if n in names]
        return float(self.ensemble_card["temperature"]) if _same_members(self.ensemble_card, chosen) else 1.0

    def weights(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Each member's weight in the combination (the ensemble card's, fitted on validation, for exactly
        its members; equal weights for any other choice of members)."""
        chosen = self.names if not names else [n for n in self.names if n in names]
        fitted = (self.ensemble_card or {}).get("weights") if _same_members(self.ensemble_card, chosen) else None
        return {n: float(fitted[n]) if fitted else 1.0 / len(chosen) for n in chosen}

    def combine(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ensemble's fake probability (N,) from these members' calibrated ones, each (N,): their
        logits weighted (:meth:`weights`) and divided by the ensemble temperature (:meth:`temperature`)."""
        from .aggregate import ensemble_probability

        names = list(member_probs)
        w = self.weights(names)
        return ensemble_probability([member_probs[n] for n in names], weights=[w[n] for n in names],
                                    temperature=self.temperature(names))

    def run(self, name: str, crops: np.ndarray, with_cam: bool = True, batch_size: int | None = None) -> MemberOutput:
        """Score crops (N, S, S, 3) RGB uint8 (S = the member's input size).

        The backbone runs without autograd (bf16 autocast on CUDA); Grad-CAM
        (pytorch-grad-cam) sees only the head, in fp32, so the map costs one
        small backward through pool + linear.
        """
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

        i = self.names.index(name)
        card, model = self.cards[i], self.models[i]
        head = _HeadOnly(model)  # per call: Grad-CAM hooks on a shared module would mix concurrent requests
        cuda = str(self.device).startswith("cuda")
        batch_size = batch_size or (64 if cuda else 16)
        logits: list[np.ndarray] = []
        cams: list[np.ndarray] = []
        for start in range(0, len(crops), batch_size):
            x = to_model_input(crops[start:start + batch_size], card.spec, self.device)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                feats = model.forward_features(x)
            feats = feats.float()  # the head and its CAM gradient in fp32
            if not with_cam:
                with torch.no_grad():
                    logits.append(model.forward_head(feats).float().view(-1).cpu().numpy())
                continue
            # Not the context-manager form: its __exit__ prints to stdout and swallows IndexError.
            cam = GradCAM(model=head, target_layers=[head.features])
            cam.compute_input_gradient = True  # parameters are frozen: the gradient flows via the input
            try:
                with torch.enable_grad():
                    maps = cam(input_tensor=feats, targets=[BinaryClassifierOutputTarget(1)] * len(x))
                logits.append(cam.outputs.detach().float().view(-1).cpu().numpy())
            finally:
                cam.activations_and_grads.release()
            cams.append(maps.astype(np.float32))
        lg = np.concatenate(logits) if logits else np.zeros(0, np.float32)
        probs = 1.0 / (1.0 + np.exp(-lg / card.spec.temperature))
        return MemberOutput(lg, probs.astype(np.float32), np.concatenate(cams) if cams else None)


def load_ensemble(source: str | os.PathLike | None = None, device: str = "cpu",
                  names: Sequence[str] | None = None) -> Ensemble:
    """Resolve ``source`` (see :func:`resolve_weights_dir`), read the cards and build every member."""
    d = resolve_weights_dir(source)
    cards = read_cards(d, names)
    ens_card = read_ensemble_card(d)
    stale = _stale_members(ens_card, cards) if ens_card else []
    if stale:
        raise WeightsError(f"{ENSEMBLE_CARD} was fitted on other weights of {', '.join(stale)}; "
                           "refit it (python -m deepfake_demo.train --fit-ensemble ...) or remove it")
    models = [build_model(c, device) for c in cards]
    return Ensemble(cards, models, device, d, ens_card)
