"""Weights: local directory, Hugging Face Hub cache (offline), integrity checks."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepfake_demo.models import NoWeightsError, WeightsError, load_ensemble, read_cards, resolve_weights_dir

ROOT = Path(__file__).resolve().parent.parent


def _hub_cache(cache: Path, repo: str, files: list[Path], commit: str = "0123456789abcdef0123456789abcdef01234567"):
    """Lay out files as huggingface_hub's cache does: blobs by hash, snapshot symlinks, refs/main."""
    base = cache / ("models--" + repo.replace("/", "--"))
    (base / "blobs").mkdir(parents=True)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, base / "blobs" / digest)
        os.symlink(os.path.relpath(base / "blobs" / digest, snap), snap / f.name)
    return snap


def _run(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "DEEPFAKE_DEMO_"))}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "deepfake_demo", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def test_local_dir_and_cards(tiny_weights):
    cards = read_cards(tiny_weights)
    assert [c.name for c in cards] == ["efficientnet_b0", "legacy_xception"]
    assert all(len(c.sha256) == 64 and c.spec.input_size == 64 for c in cards)
    assert read_cards(tiny_weights, ["legacy_xception"])[0].spec.arch == "legacy_xception"


def test_hub_repo_from_local_cache_offline(tmp_path, tiny_weights, data_dir):
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/deepfake-demo-weights", sorted(tiny_weights.iterdir()))
    img = sorted((data_dir / "faces" / "test" / "real" / "ffpp").glob("*.jpg"))[0]
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = _run(["scan", str(img), "--json", "--quiet", "--weights", "someone/deepfake-demo-weights"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["verdict"] in ("FAKE", "REAL", "UNCERTAIN") and set(rep["models"]) == {"legacy_xception",
                                                                                     "efficientnet_b0"}
    # the environment variable works the same; an uncached repo says what is wrong, exit 2
    out = _run(["scan", str(img), "--json", "--quiet"], {**env, "DEEPFAKE_DEMO_WEIGHTS": "someone/other"}, tmp_path)
    assert out.returncode == 2
    rep = json.loads(out.stdout)
    assert rep["verdict"] == "ERROR" and "not in the local cache" in rep["error"]
    assert "Traceback" not in out.stderr


def test_sha_mismatch_refused(tmp_path, tiny_weights):
    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    card = json.loads((d / "efficientnet_b0.json").read_text())
    card["sha256"] = "0" * 64
    (d / "efficientnet_b0.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="does not match"):
        load_ensemble(d)


def test_missing_or_untrained_weights_refused(tmp_path, tiny_weights):
    with pytest.raises(NoWeightsError, match="no trained weights"):
        read_cards(tmp_path)
    with pytest.raises(NoWeightsError, match="not found"):
        resolve_weights_dir(tmp_path / "nowhere")
    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    card = json.loads((d / "legacy_xception.json").read_text())
    (d / "legacy_xception.json").write_text(json.dumps({**card, "trained": False}))
    with pytest.raises(WeightsError, match="untrained"):
        read_cards(d)
    (d / "legacy_xception.safetensors").unlink()
    with pytest.raises(NoWeightsError, match="missing"):
        read_cards(d)


def test_weights_that_do_not_fit_the_arch(tmp_path, tiny_weights):
    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    card = json.loads((d / "efficientnet_b0.json").read_text())
    (d / "efficientnet_b0.json").write_text(json.dumps({**card, "arch": "efficientnet_b1"}))
    with pytest.raises(WeightsError, match="does not fit"):
        load_ensemble(d)


def test_missing_sha_or_corrupt_file_refused(tmp_path, tiny_weights):
    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    card = json.loads((d / "efficientnet_b0.json").read_text())
    (d / "efficientnet_b0.json").write_text(json.dumps({k: v for k, v in card.items() if k != "sha256"}))
    with pytest.raises(WeightsError, match="no valid sha256"):
        load_ensemble(d)
    (d / "efficientnet_b0.safetensors").write_bytes(b"garbage" * 100)
    (d / "efficientnet_b0.json").write_text(json.dumps(
        {**card, "sha256": hashlib.sha256(b"garbage" * 100).hexdigest()}))
    with pytest.raises(WeightsError, match="does not fit"):
        load_ensemble(d)


def test_card_thresholds_set_the_default(tmp_path, tiny_weights):
    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    for name in ("efficientnet_b0", "legacy_xception"):
        card = json.loads((d / f"{name}.json").read_text())
        (d / f"{name}.json").write_text(json.dumps({**card, "threshold": 0.6}))
    ens = load_ensemble(d)
    assert ens.threshold() == pytest.approx(0.6)


def test_human_readable_model_card(tiny_weights):
    from functools import partial

    from deepfake_demo.cards import EnsembleCard
    from deepfake_demo.cards import model_card_markdown as _md

    model_card_markdown = partial(_md, evaluate_command="python -m deepfake_demo.evaluate")
    cards = read_cards(tiny_weights)
    ens = EnsembleCard(tuple(sorted(c.name for c in cards)), 1.2, 0.45, info={
        "rule": "r", "validation": {"auc": 0.9, "auc_ffpp": 0.79, "ece_before": 0.08, "ece": 0.02, "n": 10},
        "reproduce": "python -m x"})
    md = model_card_markdown(cards, ens, "| results |", "2026-01-01")
    assert md.startswith("# ") and "| results |" in md and "python -m x" in md
    for c in cards:
        assert f"| {c.name} | `{c.spec.arch}` | {c.spec.input_size} |" in md
    assert "threshold 0.45" in md and "0.080 before and 0.020 after" in md
    assert "validation AUC 0.900 (0.790 on its FF++ part alone)" in md
    # members made differently get their own description, each under its name; one shared text stays single
    a, b = cards[0], cards[1]
    differ = [type(a)(a.name, a.spec, a.weights_path, a.sha256, {**a.info, "description": "made one way"}),
              type(b)(b.name, b.spec, b.weights_path, b.sha256, {**b.info, "description": "made another way"})]
    md2 = model_card_markdown(differ, ens, "| results |", "2026-01-01")
    assert f"`{a.name}`: made one way" in md2 and f"`{b.name}`: made another way" in md2
    same = [type(c)(c.name, c.spec, c.weights_path, c.sha256, {**c.info, "description": "one text"}) for c in cards]
    assert model_card_markdown(same, ens, "| results |", "2026-01-01").count("one text") == 1
    assert "never saw" not in md  # no leave-one-source-out table beside these weights


def test_leave_one_source_out_table_beside_the_cards_joins_the_readers_card(tiny_weights, tmp_path):
    """weights/loso.json (python -m deepfake_demo.training.loso table) becomes a section of the reader's
    card, one row per source left out; a missing or broken file shows nothing rather than failing."""
    import shutil

    from deepfake_demo.cards import LOSO_FILE, reader_markdown

    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    cards = read_cards(d)
    assert "never saw" not in reader_markdown(cards, None)
    rows = [{"source": "FaceSwap", "title": "FF++ FaceSwap", "n": 10, "auc_left_out": 0.61, "auc_trained_on": 0.9}]
    (d / LOSO_FILE).write_text(json.dumps({"rows": rows, "command": "python -m deepfake_demo.training.loso table"}))
    md = reader_markdown(cards, None)
    assert "### On a source they never saw" in md and "| FF++ FaceSwap | 10 | 0.610 | 0.900 |" in md
    assert md.index("never saw") < md.index("Technical card")
    # another member's recipe (loso --member legacy_xception table): its own table after the first, by name
    rows_x = [{"source": "generated", "title": "StyleGAN faces", "n": 12, "auc_left_out": 0.55, "auc_trained_on": 0.8}]
    (d / "loso_legacy_xception.json").write_text(json.dumps(
        {"rows": rows_x, "member_title": "Xception", "command": "python -m deepfake_demo.training.loso table"}))
    md = reader_markdown(cards, None)
    assert md.count("### On a source they never saw") == 1
    assert md.index("**EfficientNet-Lite0 recipe.**") < md.index("| FF++ FaceSwap |") < md.index("**Xception recipe.**")
    assert md.index("**Xception recipe.**") < md.index("| StyleGAN faces | 12 | 0.550 | 0.800 |")
    (d / LOSO_FILE).write_text("{not json")  # a broken file drops out, the other stays
    md = reader_markdown(cards, None)
    assert "| FF++ FaceSwap |" not in md and "| StyleGAN faces | 12 |" in md
    (d / "loso_legacy_xception.json").unlink()
    assert "never saw" not in reader_markdown(cards, None)


def test_verdict_shares_follow_the_apps_band():
    """The crop-by-crop verdict shares use the same band as the app: at
    threshold 0.5 and band 0.15, 0.65 is FAKE, 0.35 REAL, in between UNCERTAIN."""
    import numpy as np

    from deepfake_demo.evaluate import verdict_shares

    labels = np.array([0, 0, 0, 0, 1, 1])
    probs = np.array([0.10, 0.35, 0.50, 0.70, 0.64, 0.65])
    v = verdict_shares(labels, probs, 0.5, band=0.15)
    assert v["real"] == {"FAKE": 0.25, "REAL": 0.5, "UNCERTAIN": 0.25}
    assert v["fake"] == {"FAKE": 0.5, "REAL": 0.0, "UNCERTAIN": 0.5}
    narrow = verdict_shares(labels, probs, 0.9, band=0.15)  # the band narrows near 1: 0.85-0.95
    assert narrow["real"]["REAL"] == 1.0


def test_reader_text_comes_from_the_ensemble_card_once_for_all_members(tiny_weights, tmp_path):
    """The reader's part of the card speaks for the ensemble: `python -m deepfake_demo.cards reader` puts
    it into ensemble.json, and it wins over the members' own fields (which, before it, were shown from
    whichever member sorted first); unknown fields are refused with a message and exit 2."""
    import shutil

    from deepfake_demo.cards import main as cards_main
    from deepfake_demo.cards import read_ensemble_card, reader_markdown

    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    cards = read_cards(d)
    (d / "ensemble.json").write_text(json.dumps({"members": sorted(c.name for c in cards), "temperature": 1.0,
                                                 "threshold": 0.5, "member_sha256": {c.name: c.sha256 for c in cards}}))
    text = tmp_path / "reader.json"
    text.write_text(json.dumps({"summary": "Two networks look at each face.", "limits": "Weak on new fakes."}))
    assert cards_main(["reader", str(d), str(text)]) == 0
    ens = read_ensemble_card(d)
    md = reader_markdown(cards, ens)
    assert "Two networks look at each face." in md and "### Where they fail\n\nWeak on new fakes." in md
    before = json.loads((d / "ensemble.json").read_text())
    text.write_text(json.dumps({"summary": "x", "colour": "blue"}))
    assert cards_main(["reader", str(d), str(text)]) == 2
    assert json.loads((d / "ensemble.json").read_text()) == before, "a refused text changes nothing"
    # an ensemble card for other members does not speak for these
    other = type(ens)(("someone_else",), 1.0, 0.5, info=ens.info)
    assert "Two networks" not in reader_markdown(cards, other)


def test_how_often_wrong_says_it_in_counts_out_of_100():
    from types import SimpleNamespace

    from deepfake_demo.cards import how_often_wrong

    v = {"real": {"FAKE": 0.1, "UNCERTAIN": 0.35, "REAL": 0.55}, "fake": {"FAKE": 0.57, "UNCERTAIN": 0.27, "REAL": 0.16}}
    card = SimpleNamespace(info={"test_metrics": {"faces_test_ensemble": {"verdicts": v}}})
    s = how_often_wrong([card])
    assert "of 100 fake faces these models call about 57 FAKE, are unsure about 27 and call 16 REAL" in s
    assert "of 100 real faces they wrongly call 10 FAKE and are unsure about 35" in s
    assert how_often_wrong([SimpleNamespace(info={})]) is None


def test_test_metrics_go_into_a_card_without_touching_the_rest(tiny_weights, tmp_path):
    import shutil

    import numpy as np

    from deepfake_demo.cards import write_test_metrics

    d = tmp_path / "w"
    shutil.copytree(tiny_weights, d)
    path = sorted(p for p in d.glob("*.json") if "arch" in json.loads(p.read_text()))[0]  # a member card
    before = json.loads(path.read_text())
    write_test_metrics(path, {"faces_test": {"auc": np.float64(0.81), "n": 624}}, "python -m deepfake_demo.evaluate")
    after = json.loads(path.read_text())
    assert after["test_metrics"] == {"faces_test": {"auc": 0.81, "n": 624}}
    assert after["evaluate_command"] == "python -m deepfake_demo.evaluate"
    assert {k: v for k, v in after.items() if k not in ("test_metrics", "evaluate_command")} == \
           {k: v for k, v in before.items() if k not in ("test_metrics", "evaluate_command")}
    assert read_cards(d), "the card still loads (its sha256 check passes)"
