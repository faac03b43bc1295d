"""Build the timm ensemble from model cards (:mod:`deepfake_demo.cards`, re-exported here), load
safetensors weights from a local directory or the Hugging Face Hub, and score face crops with a
Grad-CAM map from the same forward pass."""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .cards import (ENSEMBLE_CARD, HOW_TO_GET_WEIGHTS, EnsembleCard, ModelCard, NoWeightsError, WeightsError,
                    card_threshold, card_warnings, read_cards, read_ensemble_card, sha256_file, write_card)
from .config import WEIGHTS_ENV, ModelSpec

__all__ = [
    "NoWeightsError",
    "WeightsError",
    "ModelCard",
    "MemberOutput",
    "Ensemble",
    "cpu_has_bf16",
    "backbone_autocast",
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
    "EnsembleCard",
    "HOW_TO_GET_WEIGHTS",
]

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")



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
    """The loaded members. ``score_member`` scores crops that were cut to one member's spec."""

    def __init__(self, cards: Sequence[ModelCard], models: Sequence[Any], device: str,
                 ensemble_card: EnsembleCard | None = None):
        self.cards = list(cards)
        self.models = list(models)
        self.device = device
        self.ensemble_card = ensemble_card

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cards]

    @property
    def warnings(self) -> list[str]:
        return card_warnings(self.cards)

    def threshold(self, names: Sequence[str] | None = None) -> float:
        """The decision threshold the cards give for these members (see :func:`card_threshold`)."""
        return card_threshold(self.cards, self.ensemble_card, names)

    def temperature(self, names: Sequence[str] | None = None) -> float:
        """The ensemble temperature for these members (1 where none was fitted for them)."""
        chosen = self.names if not names else [n for n in self.names if n in names]
        ens = self.ensemble_card
        return float(ens.temperature) if ens is not None and ens.fits(chosen) else 1.0

    def weights(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Each member's weight in the combination (the ensemble card's, fitted on validation, for exactly
        its members; equal weights for any other choice of members)."""
        chosen = self.names if not names else [n for n in self.names if n in names]
        ens = self.ensemble_card
        if ens is not None and ens.fits(chosen):
            return {n: ens.weight(n) for n in chosen}
        return {n: 1.0 / len(chosen) for n in chosen}

    def combine(self, member_probs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ensemble's fake probability (N,) from these members' calibrated ones, each (N,): their
        logits weighted (:meth:`weights`) and divided by the ensemble temperature (:meth:`temperature`)."""
        from .aggregate import ensemble_probability

        names = list(member_probs)
        w = self.weights(names)
        return ensemble_probability([member_probs[n] for n in names], weights=[w[n] for n in names],
                                    temperature=self.temperature(names))

    def score_member(self, name: str, crops: np.ndarray, with_cam: bool = True,
                     batch_size: int | None = None) -> MemberOutput:
        """Score crops (N, S, S, 3) RGB uint8 (S = the member's input size).

        The backbone runs without autograd (bf16 autocast on CUDA, and on a CPU with native bf16 for
        the archs whose spec says ``cpu_bf16``); Grad-CAM
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
            with torch.no_grad(), backbone_autocast(card.spec, self.device):
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


@functools.lru_cache(maxsize=1)
def _cpu_computes_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(c()) for c in checks if c is not None)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX512-BF16), where bf16 autocast is fast;
    elsewhere it is emulated and slower than fp32. ``DEEPFAKE_DEMO_FP32=1`` turns it off (fp32 everywhere,
    e.g. to compare figures with a machine without it); it is read on every call, the CPU probe once."""
    if os.environ.get("DEEPFAKE_DEMO_FP32", "") not in ("", "0"):
        return False
    return _cpu_computes_bf16()


def backbone_autocast(spec: ModelSpec, device: str) -> "torch.autocast":
    """The precision a member's backbone runs in: bf16 autocast on CUDA, and on a CPU with native bf16
    (:func:`cpu_has_bf16`) for the archs whose spec says ``cpu_bf16``; fp32 otherwise."""
    cuda = str(device).startswith("cuda")
    return torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16,
                          enabled=cuda or (spec.cpu_bf16 and cpu_has_bf16()))


def load_ensemble(source: str | os.PathLike | None = None, device: str = "cpu",
                  names: Sequence[str] | None = None) -> Ensemble:
    """Resolve ``source`` (see :func:`resolve_weights_dir`), read the cards and build every member."""
    d = resolve_weights_dir(source)
    cards = read_cards(d, names)
    ens_card = read_ensemble_card(d)
    stale = ens_card.stale(cards) if ens_card else []
    if stale:
        raise WeightsError(f"{ENSEMBLE_CARD} was fitted on other weights of {', '.join(stale)}; "
                           "refit it (python -m deepfake_demo.train --fit-ensemble ...) or remove it")
    models = [build_model(c, device) for c in cards]
    return Ensemble(cards, models, device, ens_card)
