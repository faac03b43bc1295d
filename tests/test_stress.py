"""Reliability: the fuzz harness on a small fixed run, its classification,
bombs and limits, no temp files left behind, no unpickling on the inference path.
(The sha256 refusal of weights is tested in test_models.py::test_sha_mismatch_refused.)"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepfake_demo import stress
from deepfake_demo.media import MediaError, load_media
from conftest import ROOT, need_data

INFERENCE_MODULES = ("media", "faces", "models", "explain", "aggregate", "pipeline", "report", "render", "cli")
PKG = ROOT / "deepfake_demo"


@pytest.fixture(scope="module")
def seeds():
    need_data("faces", "test")
    return stress.collect_seeds()


def test_cases_are_reproducible_and_varied(seeds):
    a = [stress.make_case(seeds, 0, i) for i in range(40)]
    b = [stress.make_case(seeds, 0, i) for i in range(40)]
    assert [(c.mutator, c.data) for c in a] == [(c.mutator, c.data) for c in b]
    assert len({c.mutator for c in a}) >= 8 and {".jpg", ".mp4"} <= {c.ext for c in a}
    assert any(c.data != s.data for c in a for s in seeds if s.name == c.seed_name)


def test_small_fuzz_run_has_no_crash_or_hang(tmp_path, seeds, tiny_weights):
    """12 fixed cases through the worker subprocess, as ``stress fuzz --n 12`` runs them."""
    cases = [stress.make_case(seeds, 0, i) for i in range(12)]
    out = stress.run_cases(cases, tmp_path, str(tiny_weights), frames=2, timeout_s=120)
    s = stress.summarize(out, 0.0)
    assert s["files"] == 12, s
    assert (s["crashes"], s["hangs"], s["unexpected"]) == (0, 0, 0), s["findings"]
    # the mutations do break files: some are refused, each with a plain reason
    errors = [o for o in out if o.verdict == "ERROR"]
    assert errors and all(o.reason and "Traceback" not in o.reason for o in errors)
    assert not list((tmp_path / "cases").iterdir())  # analysed files are removed


def test_classification_catches_each_kind_of_failure():
    c = stress.Case(0, "x.jpg", "bomb", "", ".png", b"", must_fail=True)
    ok = {"verdict": "ERROR", "reason": "image is too large", "escaped": False}
    assert stress._classify(c, "ok", ok)[0] == "ok"
    assert stress._classify(c, "hang", None)[0] == "hang"
    assert stress._classify(c, "crash", {"reason": "worker process died (exit status -11)"})[0] == "crash"
    assert stress._classify(c, "ok", {**ok, "escaped": True, "reason": "Traceback..."})[0] == "crash"
    assert stress._classify(c, "ok", {**ok, "reason": "internal error while analysing (KeyError: 1)"})[0] == "crash"
    assert stress._classify(c, "ok", {"verdict": "REAL", "reason": "r", "escaped": False})[0] == "unexpected"
    plain = stress.Case(0, "x.jpg", "bitflip", "", ".jpg", b"")
    assert stress._classify(plain, "ok", {"verdict": "REAL", "reason": "r", "escaped": False,
                                          "decodes": False})[0] == "unexpected"
    assert stress._classify(plain, "ok", {"verdict": "REAL", "reason": "r", "escaped": False,
                                          "decodes": True})[0] == "ok"


@pytest.mark.parametrize("data,ext", [
    (stress.png_bytes(60000, 60000), ".png"),
    (stress.png_bytes(2**31 - 1, 40, color_type=2), ".png"),
    (stress.png_bytes(20000, 20000, stress._zero_rows(20000, 20000)), ".png"),  # every row there: 400 MP
])
def test_bombs_refused_from_the_header(tmp_path, data, ext):
    p = tmp_path / f"bomb{ext}"
    p.write_bytes(data)
    t = time.perf_counter()
    with pytest.raises(MediaError, match="too large"):
        load_media(p)
    assert time.perf_counter() - t < 2.0  # refused before decoding (a decode of 400 MP takes many seconds)


def test_huge_image_refused_with_bounded_memory_and_no_temp_files(tmp_path, tiny_weights):
    """``stress large``'s 20000x20000 case, in a fresh subprocess: ERROR naming the size, a peak RSS
    no higher than the detector's own, nothing left in its TMPDIR."""
    p = tmp_path / "image_20000.png"
    p.write_bytes(stress.png_bytes(20000, 20000, stress._zero_rows(20000, 20000)))
    r = stress.probe(p, str(tiny_weights), timeout_s=300)
    assert r["verdict"] == "ERROR" and "400 MP" in r["reason"] and "50 MP limit" in r["reason"], r
    assert r["peak_rss_mb"] - r["peak_rss_mb_before"] < 100, r
    assert r["temp_files_left"] == []


def test_scan_leaves_no_files_in_the_temp_folder(tmp_path, tiny_weights, data_dir):
    """Images, a video and bad files through the CLI (heatmaps on): its TMPDIR stays empty."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    trunc = tmp_path / "trunc.jpg"
    img = sorted((data_dir / "faces" / "test" / "real" / "ffpp").glob("*.jpg"))[0]
    trunc.write_bytes(img.read_bytes()[:2000])
    small_video = ROOT / "examples" / "astronaut_real_zoom.mp4"  # 320x320, 24 frames: the project's own
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "deepfake_demo", "scan", str(img), str(small_video), str(bad),
                          str(trunc), "--json", "--quiet", "--frames", "4", "--weights", str(tiny_weights),
                          "--heatmaps", str(tmp_path / "maps")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["verdict"] == "ERROR" for r in reports] == [False, False, True, True], out.stderr
    assert list(tmp.rglob("*")) == []


# ------------------------------------------------------------------------------------- no unpickling

_PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _unsafe_loads(source: str) -> list[str]:
    """Lines that can unpickle: a pickle-family import, torch.load without weights_only=True,
    torch.jit/hub.load, numpy.load(allow_pickle=True), *.read_pickle."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n.split(".")[0] in _PICKLERS for n in names):
                bad.append(f"line {node.lineno}: imports {names}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f, kw = node.func, {k.arg: k.value for k in node.keywords}
            owner = ast.unparse(f.value)
            if f.attr == "load" and owner == "torch":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    bad.append(f"line {node.lineno}: torch.load without weights_only=True")
            elif f.attr == "load" and owner in ("torch.jit", "torch.hub", "jit", "hub"):
                bad.append(f"line {node.lineno}: {owner}.load")
            elif f.attr == "load" and owner in ("np", "numpy"):
                ap = kw.get("allow_pickle")
                if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                    bad.append(f"line {node.lineno}: numpy.load with allow_pickle")
            elif f.attr == "read_pickle":
                bad.append(f"line {node.lineno}: read_pickle")
    return bad


def _package_imports(path: Path) -> set[str]:
    """deepfake_demo modules (top-level names) that ``path`` imports, lazily or not."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 and path.parent == PKG:
                out |= {mod.split(".")[0]} if mod else {a.name for a in node.names}
            elif mod.startswith("deepfake_demo"):
                rest = mod.split(".")[1:]
                out |= {rest[0]} if rest else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("deepfake_demo.")}
    return out


def test_the_scanner_sees_unsafe_loads():
    assert _unsafe_loads("import pickle\n") and _unsafe_loads("from joblib import load\n")
    assert _unsafe_loads("torch.load(p)\n") and _unsafe_loads("torch.load(p, weights_only=False)\n")
    assert _unsafe_loads("np.load(p, allow_pickle=True)\n") and _unsafe_loads("torch.jit.load(p)\n")
    assert not _unsafe_loads("torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p)\n")


def test_no_unpickling_on_the_inference_path():
    """The inference modules and every package module they import (training/ excepted: it
    loads its own checkpoints) never unpickle; weights come only from safetensors."""
    todo, seen = list(INFERENCE_MODULES), set()
    while todo:
        m = todo.pop()
        if m in seen or m == "training" or not (PKG / f"{m}.py").exists():
            continue
        seen.add(m)
        todo += sorted(_package_imports(PKG / f"{m}.py"))
    assert set(INFERENCE_MODULES) <= seen
    found = {m: _unsafe_loads((PKG / f"{m}.py").read_text()) for m in sorted(seen)}
    assert not any(found.values()), {m: v for m, v in found.items() if v}
    assert "from safetensors.torch import load_file" in (PKG / "models.py").read_text()


def test_fuzz_chunks_continue_a_campaign_where_the_last_one_stopped(tmp_path, tiny_weights):
    """--start K --n N analyses cases K..K+N-1 of the seed: a long campaign (N = 10,000) runs in chunks
    that never repeat a case, and fuzz.json says which chunk it was."""
    rc = stress.main(["fuzz", "--start", "7", "--n", "2", "--frames", "1", "--timeout-s", "120", "--quiet",
                      "--weights", str(tiny_weights), "--out", str(tmp_path / "f")])
    res = json.loads((tmp_path / "f" / "fuzz.json").read_text())
    assert rc in (0, 1) and res["start"] == 7 and res["n"] == 2
    assert sorted(o["file"][:5] for o in res["outcomes"]) == ["00007", "00008"]
