"""hub_export: each member as a folder timm loads by itself (``local-dir:`` and, from a Hub cache,
``hf-hub:``), giving the logits the library gives, with the card's preprocessing in its config."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from deepfake_demo.hub_export import export_weights, hub_config, main
from deepfake_demo.models import load_ensemble, read_cards

# The tensors are the card's own (fp16 as saved), upcast by timm as by the library: only the order of
# float32 operations can differ. Random-init members move their logit by ~1e-4 across inputs, so a fixed
# tolerance would pass any preprocessing; the allowed error is a small fraction of the logits' spread.
REL_TOL = 0.01


def _assert_same_logits(theirs: np.ndarray, ours: np.ndarray) -> None:
    spread = float(np.ptp(ours))
    assert spread > 0, ours  # different crops, different logits: the comparison can fail
    np.testing.assert_allclose(theirs, ours, atol=REL_TOL * spread, rtol=0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread while this module runs: on a shared 2-core machine two threads contend with
    other processes and a 64 px forward takes seconds instead of a tenth of one (measured here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fp32(monkeypatch):
    """Our side in fp32, as timm runs the exported weights: these tests compare weights and layout, so a
    member that would run in bf16 on this CPU (ModelSpec.cpu_bf16) must not differ by precision."""
    monkeypatch.setenv("DEEPFAKE_DEMO_FP32", "1")


@pytest.fixture(scope="module")
def ensemble(tiny_weights):
    return load_ensemble(str(tiny_weights))


@pytest.fixture(scope="module")
def exported(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub")
    return {e.name: e.folder for e in export_weights(str(tiny_weights), out)}


def _crops(size: int, n: int = 6, seed: int = 0) -> np.ndarray:
    """Face-crop-shaped input (N, S, S, 3) RGB uint8; random pixels suffice to compare two scorers."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _timm_logits(model, crops: np.ndarray) -> np.ndarray:
    """What a timm user does: the model's own data config -> timm's eval transform on PIL crops."""
    import timm

    cfg = timm.data.resolve_model_data_config(model)
    tf = timm.data.create_transform(**cfg)
    x = torch.stack([tf(Image.fromarray(c)) for c in crops])
    with torch.no_grad():
        return model(x).view(-1).numpy()


def test_every_member_is_exported_with_its_card_preprocessing(ensemble, exported):
    import timm

    assert sorted(exported) == sorted(ensemble.names)
    for card in ensemble.cards:
        folder = exported[card.name]
        assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["architecture"] == card.spec.arch and cfg["num_classes"] == 1
        pc = cfg["pretrained_cfg"]
        assert pc["input_size"] == [3, card.spec.input_size, card.spec.input_size]
        assert pc["mean"] == list(card.spec.mean) and pc["std"] == list(card.spec.std)
        assert pc["interpolation"] == card.spec.interpolation and pc["crop_pct"] == 1.0
        assert cfg["deepfake_demo"]["temperature"] == card.spec.temperature
        assert cfg["deepfake_demo"]["crop_margin"] == card.spec.crop_margin
        assert "test-only" in cfg["deepfake_demo"]["warning"]  # the card's warning travels with the export
        # what timm resolves from the folder is the card's, not the arch's ImageNet defaults
        model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        data = timm.data.resolve_model_data_config(model)
        assert tuple(data["input_size"]) == (3, card.spec.input_size, card.spec.input_size)
        assert tuple(data["mean"]) == pytest.approx(card.spec.mean)
        assert tuple(data["std"]) == pytest.approx(card.spec.std)
        assert model.num_classes == 1


def test_timm_scores_the_export_like_the_library(ensemble, exported):
    import timm

    for card in ensemble.cards:
        crops = _crops(card.spec.input_size)
        ours = ensemble.score_member(card.name, crops, with_cam=False).logits
        model = timm.create_model(f"local-dir:{exported[card.name]}", pretrained=True).eval()
        _assert_same_logits(_timm_logits(model, crops), ours)


def test_same_dtype_keeps_the_tensors_and_fp32_upcasts_them(ensemble, exported, tmp_path):
    card = ensemble.cards[0]
    source = load_file(str(card.weights_path))
    same = load_file(str(exported[card.name] / "model.safetensors"))
    assert same.keys() == source.keys()
    assert all(same[k].dtype == source[k].dtype and torch.equal(same[k], source[k]) for k in source)

    (e32,) = export_weights(str(card.weights_path.parent), tmp_path, names=[card.name], dtype="fp32")
    wide = load_file(str(e32.folder / "model.safetensors"))
    assert {v.dtype for k, v in wide.items() if source[k].is_floating_point()} == {torch.float32}
    assert all(torch.equal(wide[k], source[k].to(wide[k].dtype)) for k in source)


def test_hf_hub_id_loads_from_an_offline_cache(ensemble, exported, tmp_path, monkeypatch):
    """``hf-hub:OWNER/NAME`` after the folder was uploaded: the Hub cache layout, with the Hub unreachable."""
    import huggingface_hub.constants
    import timm

    card = ensemble.cards[-1]
    repo = tmp_path / "models--someone--deepfake-demo-member"
    commit = "0" * 40
    shutil.copytree(exported[card.name], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    model = timm.create_model("hf-hub:someone/deepfake-demo-member", pretrained=True, cache_dir=tmp_path).eval()
    crops = _crops(card.spec.input_size, seed=1)
    _assert_same_logits(_timm_logits(model, crops), ensemble.score_member(card.name, crops, with_cam=False).logits)


def test_config_holds_only_fields_timm_knows(ensemble):
    from timm.models import PretrainedCfg

    for card in ensemble.cards:
        PretrainedCfg(**hub_config(card)["pretrained_cfg"])  # an unknown key would raise TypeError


def test_cli_refuses_missing_or_corrupt_weights_with_a_message(tiny_weights, tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert "weights directory not found" in capsys.readouterr().err

    bad = tmp_path / "bad"
    shutil.copytree(tiny_weights, bad)
    name = read_cards(bad)[0].weights_path.name
    data = bytearray((bad / name).read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    (bad / name).write_bytes(bytes(data))
    assert main(["--weights", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "does not match its card" in capsys.readouterr().err
    assert not (tmp_path / "out" / read_cards(bad)[0].name / "model.safetensors").exists()
