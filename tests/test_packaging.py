"""`pip install .`: the wheel builds offline from pyproject.toml, installs into a fresh venv, and its
`deepfake-demo` command scans like `python -m deepfake_demo scan`.

The fresh venv sees .venv's packages through a .pth file (`--system-site-packages` alone would show
the base interpreter's, not .venv's), so nothing is downloaded; `pip install --no-index` still
resolves the wheel's declared dependencies against them and fails if one is missing.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, need_data

# what the wheel is built from: a copy, so the in-tree build/ and *.egg-info never land in the checkout
_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "deepfake_demo")


def _env() -> dict[str, str]:
    """The caller's environment without anything that would point the installed command at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPFAKE_DEMO_") and k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # one image needs no parallel torch; on a busy machine it only contends
    return env


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the built wheel installed; returns its bin/ directory."""
    if shutil.which("pip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("this interpreter has no pip to build the wheel with")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    src.mkdir()
    for name in _SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp / "dist"
    out = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                "-w", str(dist), str(src)], cwd=tmp)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    wheels = list(dist.glob("deepfake_demo-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp / "venv"
    out = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    assert out.returncode == 0, out.stderr
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp).stdout.strip())
    (purelib / "_parent_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-index", str(wheels[0])], cwd=tmp)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return venv / "bin"


def test_wheel_installs_the_package_and_its_command(installed):
    where = _run([str(installed / "python"), "-c", "import deepfake_demo; print(deepfake_demo.__file__, "
                  "deepfake_demo.__version__)"], cwd=installed)
    path, version = where.stdout.split()
    # imported from the venv's own site-packages, not from the checkout
    assert Path(path).resolve().is_relative_to(installed.parent.resolve()), path
    init = (ROOT / "deepfake_demo" / "__init__.py").read_text()
    assert f'__version__ = "{version}"' in init  # the version has one source

    helped = _run([str(installed / "deepfake-demo"), "scan", "--help"], cwd=installed)
    assert helped.returncode == 0, helped.stderr
    assert "--weights" in helped.stdout and "--json" in helped.stdout
    assert helped.stdout.startswith("usage: deepfake-demo scan"), helped.stdout[:200]  # the name the user typed
    bare = _run([str(installed / "deepfake-demo")], cwd=installed)
    assert bare.returncode == 2 and "required" in bare.stderr and "Traceback" not in bare.stderr


def test_installed_command_scans_a_real_face(installed):
    image = sorted(need_data("faces", "test", "real", "ffpp").glob("*.jpg"))[0]
    out = _run([str(installed / "deepfake-demo"), "scan", "--json", "--quiet", "--weights", str(ROOT / "weights"),
                str(image)], cwd=installed)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert len(rows) == 1, out.stdout
    row = rows[0]
    assert row["path"] == str(image) and row["error"] is None
    assert row["verdict"] in ("FAKE", "REAL", "UNCERTAIN"), row["verdict"]
    assert 0.0 <= row["fake_probability"] <= 1.0


def test_installed_package_without_weights_says_so(installed, tmp_path):
    """No checkout beside site-packages: the default weights/ is missing, which is a message and exit 2."""
    out = _run([str(installed / "deepfake-demo"), "scan", str(tmp_path / "missing.jpg")], cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "weights directory not found" in out.stderr and "--weights" in out.stderr, out.stderr
    assert "missing.jpg: ERROR" in out.stdout
