"""The Gradio app without a browser: the Blocks build, the handlers on real
media from ../shared/data with tiny test-only weights, the no-weights state,
and a gradio_client round trip that must give the CLI's verdict."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT

gr = pytest.importorskip("gradio")

# the project's own media (examples/make_examples.py), so these run without ../shared/data
IMAGE = ROOT / "examples" / "astronaut_real.jpg"
VIDEO = ROOT / "examples" / "astronaut_real_zoom.mp4"  # 320x320, 24 frames: fast on a CPU
FRAMES = 4
VERDICTS = ("FAKE", "REAL", "UNCERTAIN", "NO_FACE", "ERROR")


def _noop(*_a, **_k) -> None:
    pass


def _val(x):
    """A handler output's value (outputs that also change a property come as gr.update dicts)."""
    return x["value"] if isinstance(x, dict) and x.get("__type__") == "update" else x


def _app_module():
    sys.path.insert(0, str(ROOT))
    import app as app_module

    return app_module


def _app_for(weights) -> SimpleNamespace:
    """The app's handlers and Blocks for one config (the app keeps no global settings)."""
    module = _app_module()
    config = module.AppConfig(weights=str(weights), device="cpu")
    image, video, draw = module.make_handlers(config)
    return SimpleNamespace(module=module, config=config, analyze_image=image, analyze_video=video, draw=draw,
                           build_demo=lambda: module.build_demo(config))


@pytest.fixture()
def app(tiny_weights):
    return _app_for(tiny_weights)


def test_import_does_not_load_torch():
    code = "import sys; import app; assert 'torch' not in sys.modules, 'app imported torch'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_build_demo_names_the_api_endpoints(app):
    demo = app.build_demo()
    names = {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    assert {"analyze_image", "analyze_video"} <= names


def test_image_handler_on_real_face(app):
    out = app.analyze_image(str(IMAGE), None, 0.5, 0.5, "confident", progress=_noop)
    verdict, badge, faces, json_path, key = out
    assert [u["visible"] for u in app.module._shown(faces)] == [True, True]
    frames, panels, plot, video, cleared = app.draw(key, 0.5, progress=_noop)
    assert [u["visible"] for u in (frames, panels, plot, video)] == [True, True, True, False], "an image has no video"
    assert cleared is None and app.draw(key, 0.5, progress=_noop)[0]["visible"] is False, "drawn once, then gone"
    plot = _val(plot)
    assert verdict in VERDICTS and verdict != "ERROR"
    assert verdict.replace("_", " ") in badge
    assert "test-only" in badge, "the weights' warning must be on the badge"
    report = json.loads(Path(json_path).read_text())
    assert report["verdict"] == verdict and report["kind"] == "image"
    assert len(report["faces"]) >= 1 and "Face 1" in faces
    frames, panels = _val(frames), _val(panels)
    assert len(frames) == 1 and frames[0][0].ndim == 3
    assert len(panels) == len(report["faces"])
    grid = panels[0][0]
    assert grid.dtype == np.uint8 and grid.shape[0] == grid.shape[1]  # 2x2: crop, ensemble, two members
    assert plot is not None and len(plot.axes) == 1
    assert _val(video) is None


def test_video_handler_writes_playable_mp4(app):
    out = app.analyze_video(str(VIDEO), FRAMES, None, 0.5, 0.4, "confident", progress=_noop)
    verdict, badge, faces, json_path, key = out
    frames, panels, plot, video, _ = app.draw(key, 0.4, progress=_noop)
    plot = _val(plot)
    report = json.loads(Path(json_path).read_text())
    assert verdict == report["verdict"] and report["frames_analyzed"] == FRAMES
    assert f"{FRAMES} frame(s) analysed" in badge
    assert 1 <= len(_val(frames)) <= FRAMES and len(_val(panels)) >= 1
    path = Path(_val(video))
    assert path.is_file() and path.stat().st_size > 1000
    head = path.read_bytes()[:64]
    assert b"ftyp" in head or head.startswith(b"\x1a\x45\xdf\xa3"), "mp4 (H.264) or webm expected"
    lines = plot.axes[0].get_lines()
    assert any(l.get_label().startswith("face 1") for l in lines)
    assert any(l.get_label().startswith("threshold") for l in lines)


def test_one_model_and_threshold_reach_the_library(app):
    out = app.analyze_image(str(IMAGE), ["efficientnet_b0"], 0.3, 0.5, "mean", progress=_noop)
    report = json.loads(Path(out[3]).read_text())
    assert list(report["models"]) == ["efficientnet_b0"]
    assert report["threshold"] == 0.3 and report["aggregation"] == "mean"


def test_bad_input_is_an_error_verdict_not_a_traceback(app, tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    out = app.analyze_image(str(bad), None, 0.5, 0.5, "confident", progress=_noop)
    assert out[0] == "ERROR" and "ERROR" in out[1]
    assert [u["visible"] for u in app.module._shown(out[2])] == [True, True], "an ERROR shows its card and the JSON"
    assert out[-1] is None and [u["visible"] for u in app.draw(out[-1], 0.5, progress=_noop)[:4]] == [False] * 4, \
        "and no empty galleries or plot"
    with pytest.raises(gr.Error):
        app.analyze_image(None, None, 0.5, 0.5, "confident", progress=_noop)
    with pytest.raises(gr.Error):
        app.analyze_image(str(bad), [], 0.5, 0.5, "confident", progress=_noop)


def test_no_weights_gives_a_message(tmp_path):
    from deepfake_demo import present

    empty = tmp_path / "no_weights"
    empty.mkdir()
    app = _app_for(empty)
    info = present.read_weights(app.config)
    assert info.cards == () and "No trained weights" in info.problem and "--weights" in info.problem
    app.build_demo()  # builds without weights
    with pytest.raises(gr.Error, match="No trained weights"):
        app.analyze_image(str(ROOT / "examples" / "astronaut_real.jpg"), None, 0.5, 0.5, "confident",
                          progress=_noop)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradio_client_matches_cli(app, tiny_weights):
    from gradio_client import Client, handle_file

    video, image = VIDEO, IMAGE
    cli = subprocess.run(
        [sys.executable, "-m", "deepfake_demo", "scan", str(video), str(image), "--json", "--quiet",
         "--frames", str(FRAMES), "--weights", str(tiny_weights)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    by_kind = {r["kind"]: r for r in map(json.loads, cli.stdout.splitlines())}

    demo = app.build_demo()
    demo.queue(default_concurrency_limit=1, max_size=4)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        res = client.predict(handle_file(str(video)), FRAMES, ["efficientnet_b0", "legacy_xception"], 0.5, 0.5,
                             "confident", api_name="/analyze_video")
        assert len(res) == 4, "the API answers verdict, badge, face cards and the JSON report; drawings are the page's"
        api = json.loads(Path(res[-1]).read_text())
        assert res[0]["label"] == by_kind["video"]["verdict"] == api["verdict"]
        assert api["fake_probability"] == pytest.approx(by_kind["video"]["fake_probability"], abs=1e-4)
        assert [f["frame_index"] for f in api["faces"][0]["frames"]] == \
               [f["frame_index"] for f in by_kind["video"]["faces"][0]["frames"]]

        res = client.predict(handle_file(str(image)), ["efficientnet_b0", "legacy_xception"], 0.5, 0.5,
                             "confident", api_name="/analyze_image")
        api = json.loads(Path(res[-1]).read_text())
        assert res[0]["label"] == by_kind["image"]["verdict"] == api["verdict"]
        assert api["fake_probability"] == pytest.approx(by_kind["image"]["fake_probability"], abs=1e-4)
    finally:
        demo.close()


def test_threshold_default_is_the_cards_fitted_one(tiny_weights, tmp_path):
    """The slider starts where the library's default threshold is, so an untouched
    UI and a CLI call without --threshold decide alike."""
    import shutil

    from deepfake_demo import present

    for p in tiny_weights.iterdir():
        shutil.copy(p, tmp_path / p.name)
    for p, t in zip(sorted(tmp_path.glob("*.json")), (0.3, 0.4)):
        card = json.loads(p.read_text())
        card["threshold"] = t
        p.write_text(json.dumps(card))
    app = _app_for(tmp_path)
    info = present.read_weights(app.config)
    assert info.problem is None and len(info.cards) == 2
    z = np.mean([np.log(t / (1 - t)) for t in (0.3, 0.4)])
    assert present.card_slider_threshold(info) == round(1 / (1 + np.exp(-z)), 2)
    demo = app.build_demo()
    sliders = [b for b in demo.blocks.values() if getattr(b, "label", None) == "Decision threshold"]
    assert sliders and sliders[0].value == round(1 / (1 + np.exp(-z)), 2)

    # with an ensemble card: its threshold for all members, a member's own when it runs alone
    names = sorted(c.name for c in info.cards)
    (tmp_path / "ensemble.json").write_text(json.dumps(
        {"members": names, "temperature": 1.3, "threshold": 0.4237,
         "member_sha256": {c.name: c.sha256 for c in info.cards}}))
    info = present.read_weights(app.config)
    assert present.card_slider_threshold(info) == 0.42
    assert present.card_slider_threshold(info, [names[0]]) == 0.3
    # an untouched slider lets the library use its exact fitted threshold; a moved one is passed on
    assert present.library_threshold(0.42, 0.4237) is None
    assert present.library_threshold(0.3, 0.3) is None
    assert present.library_threshold(0.6, 0.4237) == 0.6
    assert present.library_threshold(0.42, None) == 0.42  # no default known: the slider's value
    image = str(ROOT / "examples" / "astronaut_real.jpg")
    untouched = json.loads(Path(app.analyze_image(image, names, 0.42, 0.5, "confident", progress=_noop)[3])
                           .read_text())
    assert untouched["threshold"] == 0.4237  # the Detector's default, not the slider's rounding
    alone = json.loads(Path(app.analyze_image(image, [names[0]], 0.3, 0.5, "confident", progress=_noop)[3])
                       .read_text())
    assert alone["threshold"] == 0.3
    moved = json.loads(Path(app.analyze_image(image, names, 0.6, 0.5, "confident", progress=_noop)[3]).read_text())
    assert moved["threshold"] == 0.6


def test_main_reads_flags_and_environment(app, tiny_weights, monkeypatch):
    app = app.module
    seen, configs = {}, []
    build = app.build_demo
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    monkeypatch.setattr(app, "build_demo", lambda config=None: configs.append(config) or build(config))
    monkeypatch.setenv("DEEPFAKE_DEMO_HOST", "0.0.0.0")
    monkeypatch.setenv("DEEPFAKE_DEMO_PORT", "7999")
    monkeypatch.setenv("DEEPFAKE_DEMO_SHARE", "1")
    monkeypatch.setenv("DEEPFAKE_DEMO_WEIGHTS", str(tiny_weights))
    monkeypatch.delenv("DEEPFAKE_DEMO_DEVICE", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    app.main(["--no-warm-up"])
    assert (seen["server_name"], seen["server_port"], seen["share"]) == ("0.0.0.0", 7999, True)
    assert configs[-1] == app.AppConfig(weights=str(tiny_weights), device="auto")  # --device defaults to auto
    app.main(["--no-warm-up", "--host", "127.0.0.1", "--port", "7001", "--device", "cpu", "--weights", "elsewhere"])
    assert (seen["server_name"], seen["server_port"]) == ("127.0.0.1", 7001)
    assert configs[-1] == app.AppConfig(weights="elsewhere", device="cpu")  # flags win over the environment
    assert seen["show_error"] is True and "verdict-badge" in seen["css"]
    monkeypatch.setenv("DEEPFAKE_DEMO_DEVICE", "cuda")
    app.main(["--no-warm-up"])
    assert configs[-1].device == "cuda"
    with pytest.raises(FrozenInstanceError):  # no settings to change behind the handlers' backs
        configs[-1].weights = "x"
    for bad in (["--device", "gpu"], ["--device", "cuda:x"]):
        with pytest.raises(SystemExit):
            app.main(["--no-warm-up", *bad])
