"""Shared fixtures. Real media comes from ../shared/data (never copied into the
repo); weights for pipeline tests are tiny random-init models the tests make
themselves and mark as test-only in their cards."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEEPFAKE_DEMO_DATA", ROOT.parent / "shared" / "data"))
TEST_INPUT_SIZE = 64  # tiny inputs keep random-init models fast on a 2-core CPU


def need_data(*parts: str) -> Path:
    """Path under the shared data folder, or skip the test saying what is missing."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not found at {p} (tests read real media from ../shared/data)")
    return p


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return need_data()


@pytest.fixture(scope="session")
def videos(data_dir) -> list[Path]:
    vids = sorted((data_dir / "videos").glob("*/*.mp4"))
    if not vids:
        pytest.skip("no shared videos found")
    return vids


def make_tiny_weights(out: Path, archs=("legacy_xception", "efficientnet_b0"), seed: int = 0) -> Path:
    """Random-init ensemble members saved as safetensors + cards, marked test-only."""
    import timm
    import torch

    from deepfake_demo.config import MODEL_SPECS
    from deepfake_demo.training.export import save_member

    torch.manual_seed(seed)
    for arch in archs:
        model = timm.create_model(arch, pretrained=False, num_classes=1)
        save_member(model, replace(MODEL_SPECS[arch], input_size=TEST_INPUT_SIZE), out,
                    warning="test-only random weights: probabilities mean nothing")
    return out


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("tiny_weights"))


@pytest.fixture(scope="session")
def detector(tiny_weights):
    from deepfake_demo.pipeline import Detector

    return Detector.load(str(tiny_weights), "cpu")
