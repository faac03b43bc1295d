"""What the app shows, without Gradio and without weights: deepfake_demo.present on
Reports built by hand, and render drawing (not deciding) from them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepfake_demo import present
from deepfake_demo.aggregate import Verdict
from deepfake_demo.media import Frame
from deepfake_demo.report import FaceObservation, FaceTrack, Report

ROOT = Path(__file__).resolve().parent.parent


def _report(verdict_drawn: str = Verdict.FAKE, p: float = 0.1, reason: str = "a <b>reason</b>") -> Report:
    """A one-face image report whose face is drawn as ``verdict_drawn`` whatever ``p`` says."""
    img = np.full((200, 240, 3), 90, np.uint8)
    s = 64
    obs = FaceObservation(frame_index=0, time_s=0.0, box=(60.0, 50.0, 140.0, 150.0), detection_prob=0.99,
                          fake_probability=p, models={"a": p, "b": p}, verdict=verdict_drawn,
                          crop_box=(40, 40, 160, 160), crop=np.full((s, s, 3), 120, np.uint8),
                          cam=np.linspace(0, 1, s * s, dtype=np.float32).reshape(s, s),
                          model_cams={"a": np.zeros((s, s), np.float32), "b": np.ones((s, s), np.float32)},
                          detail=9.0)
    track = FaceTrack(id=1, fake_probability=p, verdict=Verdict.UNCERTAIN, reason=reason, models={"a": p, "b": p},
                      observations=(obs,))
    return Report(path="/some/dir/my photo (1).jpg", kind="image", verdict=Verdict.UNCERTAIN, reason=reason,
                  fake_probability=p, models={"a": p, "b": p}, faces=(track,), frames_analyzed=1, width=240,
                  height=200, threshold=0.42, uncertain_band=0.15, warnings=("face 1 is soft <x>",),
                  frames=(Frame(0, 0.0, img),))


def test_the_package_never_imports_gradio_and_present_not_torch():
    pattern = re.compile(r"^\s*(import\s+gradio|from\s+gradio\b)", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "deepfake_demo").rglob("*.py")
                 if pattern.search(p.read_text())]
    assert not offenders, offenders
    code = ("import sys; import deepfake_demo.present; assert 'torch' not in sys.modules, 'torch'; "
            "import deepfake_demo.pipeline, deepfake_demo.render, deepfake_demo.cli; "
            "assert 'gradio' not in sys.modules, 'gradio'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_badge_and_face_cards():
    from deepfake_demo.render import VERDICT_RGB, verdict_hex

    r = _report()
    badge = present.badge_html(r)
    assert "background:#{:02x}{:02x}{:02x}".format(*VERDICT_RGB[Verdict.UNCERTAIN]) in badge
    assert ">UNCERTAIN<" in badge and "<b>0.10</b>" in badge
    assert "threshold 0.42 (uncertain 0.27&ndash;0.57)" in badge  # the band's edges, from the Report
    assert "a &lt;b&gt;reason&lt;/b&gt;" in badge and "<b>reason</b>" not in badge  # user-visible text is escaped
    assert "face 1 is soft &lt;x&gt;" in badge and "240&times;200" in badge
    cards = present.faces_html(r)
    assert "Face 1" in cards and "--c:" + verdict_hex(Verdict.UNCERTAIN) in cards and "in the image" in cards
    err = Report(path="x.mp4", kind="video", verdict=Verdict.ERROR, reason="not a readable video", error="x")
    assert "background:" + verdict_hex(Verdict.ERROR) in present.badge_html(err) and "probability" not in present.badge_html(err)
    assert present.faces_html(err) == '<div class="small"></div>'
    no_face = Report(path="x.jpg", kind="image", verdict=Verdict.NO_FACE, reason="no face")
    assert ">NO FACE<" in present.badge_html(no_face) and "No face tracks." in present.faces_html(no_face)
    # the cards' measured error rates sit under a scored verdict, not under one with nothing judged
    trust = "called 20 % of real faces FAKE <x>"
    assert 'id="trust">called 20 % of real faces FAKE &lt;x&gt;<' in present.badge_html(r, trust)
    assert "trust" not in present.badge_html(no_face, trust) and "trust" not in present.badge_html(r)


def test_how_often_wrong_reads_the_cards_test_figures(tiny_weights):
    from dataclasses import replace as _replace

    from deepfake_demo.cards import how_often_wrong, read_cards

    cards = read_cards(tiny_weights)
    assert how_often_wrong(cards) is None  # nothing measured: nothing claimed
    verdicts = {"real": {"FAKE": 0.23, "REAL": 0.5, "UNCERTAIN": 0.27}, "fake": {"FAKE": 0.7, "REAL": 0.1,
                                                                               "UNCERTAIN": 0.2}}
    measured = [_replace(c, info={**c.info, "test_metrics": {"faces_test_ensemble": {"verdicts": verdicts}}})
                for c in cards]
    line = how_often_wrong(measured)
    assert "of 100 real faces they wrongly call 23 FAKE" in line and "call 10 REAL" in line


def test_outputs_draw_what_the_report_says(tmp_path):
    """render colours each box by the observation's own verdict: it decides nothing."""
    from deepfake_demo.render import VERDICT_RGB

    seen = []
    out = present.outputs(_report(Verdict.FAKE, p=0.1), 0.5, False, lambda f, d: seen.append(d), tmp_path / "a")
    assert out.verdict == Verdict.UNCERTAIN and out.video is None and seen == ["drawing heatmaps on frame 1/1"]
    (frame, caption), = out.frames
    assert caption == "1 face(s)"
    assert tuple(frame[100, 60]) == VERDICT_RGB[Verdict.FAKE]  # the box's left edge: FAKE red, though p = 0.1
    green = present.outputs(_report(Verdict.REAL, p=0.9), 0.5, False, lambda *a: None, tmp_path / "b")
    assert tuple(green.frames[0][0][100, 60]) == VERDICT_RGB[Verdict.REAL]
    (grid, label), = out.faces
    assert label == "face 1: 0.10" and grid.shape == (128, 128, 3)  # crop, ensemble, two members: 2x2
    assert out.plot is not None
    path = Path(out.json_path)
    assert path.parent == tmp_path / "a" and path.name == "my_photo_1__report.json"
    d = json.loads(path.read_text())
    assert d["faces"][0]["frames"][0]["verdict"] == Verdict.FAKE and d["verdict"] == Verdict.UNCERTAIN


def _video_report(times=(0.0, 0.4, 0.8), duration=1.2) -> Report:
    base = _report()
    frames = tuple(Frame(int(t * 25), t, base.frames[0].image) for t in times)
    obs = tuple(FaceObservation(**{**base.faces[0].observations[0].__dict__, "frame_index": f.index,
                                   "time_s": f.time_s}) for f in frames)
    track = FaceTrack(id=1, fake_probability=0.1, verdict=Verdict.UNCERTAIN, reason="r", models={"a": .1, "b": .1},
                      observations=obs)
    return Report(**{**base.__dict__, "kind": "video", "frames": frames, "faces": (track,),
                     "frames_analyzed": len(frames), "duration_s": duration, "fps": 25.0, "path": "/x/clip.mp4"})


def test_annotated_video_plays_at_the_sources_timing_with_one_honest_progress_bar(tmp_path):
    """The slideshow holds each analysed frame until the next one's time, so it lasts as long as the
    input; the drawing step's progress bar only moves forward, from 0 to 1, through named stages."""
    import cv2

    from deepfake_demo.render import frame_durations

    rep = _video_report()
    assert frame_durations(rep) == pytest.approx([0.4, 0.4, 0.4])
    assert frame_durations(rep, seconds_per_frame=0.5) == [0.5] * 3
    seen = []
    out = present.outputs(rep, 0.5, True, lambda f, d: seen.append((f, d)), tmp_path)
    assert out.video and out.video.endswith(".mp4"), "imageio-ffmpeg (a requirement) writes H.264 mp4"
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert seen[-1][1] == "writing annotated video 3/3" and seen[0][1] == "drawing heatmaps on frame 1/3"
    cap = cv2.VideoCapture(out.video)
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert n / fps == pytest.approx(1.2, abs=0.11), (n, fps)
    with open(out.video, "rb") as fh:
        head = fh.read(64)
    assert b"ftyp" in head


def test_verdict_colours_keep_white_text_readable():
    from deepfake_demo.render import VERDICT_RGB, contrast_with_white

    assert contrast_with_white((255, 255, 255)) == pytest.approx(1.0)
    assert contrast_with_white((0, 0, 0)) == pytest.approx(21.0)
    for verdict, rgb in VERDICT_RGB.items():
        assert contrast_with_white(rgb) >= 4.5, (verdict, rgb)  # WCAG AA for normal text
    assert "opacity" not in present.CSS.split(".verdict-badge .r")[1].split("}")[0]


def test_every_example_is_labelled_real_or_fake_by_what_it_is():
    files = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".jpg", ".mp4"))
    assert files
    for p in files:
        label = present.example_label(p)
        assert label.startswith("FAKE" if "blended" in p.name else "REAL"), (p.name, label)
        assert ("video" in label) == (p.suffix == ".mp4")
    assert len({present.example_label(p) for p in files}) == len(files), "two examples with one label"


def test_file_stem_is_safe_and_short():
    from dataclasses import replace

    from deepfake_demo.render import file_stem

    r = _report()
    assert file_stem(r) == "my_photo_1_"
    assert file_stem(replace(r, path=None)) == "array"
    assert file_stem(replace(r, path="/x/" + "é" * 100 + ".mp4")) == "é" * 60
    assert file_stem(replace(r, path="/x/../.jpg")) == ".jpg"


def test_request_dir_sweeps_old_folders(tmp_path):
    old, fresh = tmp_path / "old", tmp_path / "fresh"
    for d in (old, fresh):
        d.mkdir()
        (d / "report.json").write_text("{}")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    new = present.request_dir(tmp_path, max_age_s=3600)
    assert new.parent == tmp_path and new.is_dir() and not any(new.iterdir())
    assert not old.exists() and fresh.is_dir()
    assert present.request_dir(tmp_path) != new  # one folder per request


def test_thresholds_as_the_slider_shows_them():
    assert present.slider_threshold(0.4237) == 0.42
    assert present.slider_threshold(0.99) == 0.95 and present.slider_threshold(0.001) == 0.05
    assert present.library_threshold(0.42, 0.4237) is None  # untouched: the library's exact value
    assert present.library_threshold(0.43, 0.4237) == 0.43
    assert present.card_slider_threshold(present.WeightsInfo()) == 0.5  # no cards: the library's default


def test_app_config_from_the_environment():
    assert present.AppConfig.from_env({}) == present.AppConfig(None, "auto")
    env = {"DEEPFAKE_DEMO_WEIGHTS": "owner/repo", "DEEPFAKE_DEMO_DEVICE": "cuda"}
    assert present.AppConfig.from_env(env) == present.AppConfig("owner/repo", "cuda")
    assert present.AppConfig.from_env({"DEEPFAKE_DEMO_WEIGHTS": "", "DEEPFAKE_DEMO_DEVICE": ""}).device == "auto"


def test_app_upload_limits_come_from_the_environment_and_refuse_before_any_model(tmp_path):
    env = {"DEEPFAKE_DEMO_MAX_UPLOAD_MB": "50", "DEEPFAKE_DEMO_MAX_VIDEO_S": "1.5"}
    cfg = present.AppConfig.from_env(env)
    assert (cfg.max_upload_mb, cfg.max_video_s) == (50.0, 1.5)
    for bad in ("lots", "0", "-3"):
        with pytest.raises(ValueError, match="DEEPFAKE_DEMO_MAX_UPLOAD_MB"):
            present.AppConfig.from_env({"DEEPFAKE_DEMO_MAX_UPLOAD_MB": bad})
    photo, clip = ROOT / "examples" / "astronaut_real.jpg", ROOT / "examples" / "astronaut_real_zoom.mp4"
    present.check_upload(present.AppConfig(), str(photo), "image")  # within the defaults: no error
    present.check_upload(present.AppConfig(), str(clip), "video")
    with pytest.raises(present.AppError, match="up to 0.01 MB; this one is"):
        present.check_upload(present.AppConfig(max_upload_mb=0.01), str(photo), "image")
    with pytest.raises(present.AppError, match=r"too long for this app: 2.4 s; it takes videos up to 1.5 s") as e:
        present.check_upload(cfg, str(clip), "video")  # 2.4 s against 1.5 s
    assert e.value.title == "Video too long"
    # the app's own analyse refuses it the same way, with no weights needed (nothing loads first)
    with pytest.raises(present.AppError, match="too long for this app"):
        present.analyze(present.AppConfig(weights=str(tmp_path / "none"), max_video_s=1.0), str(clip), "video",
                        4, None, 0.5, None, lambda *a: None)


def test_user_errors_come_before_any_model_loads(tmp_path):
    """Missing input and a bad threshold are refused with a message; no weights say so."""
    cfg = present.AppConfig(weights=str(tmp_path), device="cpu")  # an empty folder: no weights
    with pytest.raises(present.AppError, match="upload an image"):
        present.analyze(cfg, None, "image", 1, None, 0.5, "confident", lambda *a: None)
    with pytest.raises(present.AppError, match="upload a video"):
        present.analyze(cfg, "", "video", 4, None, 0.5, "confident", lambda *a: None)
    with pytest.raises(present.AppError, match="between 0 and 1"):
        present.analyze(cfg, "x.jpg", "image", 1, None, 1.0, "confident", lambda *a: None)
    with pytest.raises(present.AppError, match="No trained weights") as info:
        present.analyze(cfg, "x.jpg", "image", 1, None, 0.5, "confident", lambda *a: None)
    assert info.value.title == "No trained weights"
    assert "No trained weights found" in present.read_weights(cfg).problem


def test_durations_read_as_a_person_says_them():
    assert [present._duration(s) for s in (1.5, 3.0, 4.04, 42.4, 60, 90, 300)] == [
        "1.5 s", "3 s", "4 s", "42 s", "1 min", "1.5 min", "5 min"]


def test_pending_drawings_are_taken_once_and_never_pile_up():
    """The answer leaves its report for the page's drawing step; an API caller never takes it, so the
    store keeps at most max_items, none older than max_age_s, and a key is good for one take."""
    reports = [_report() for _ in range(4)]
    pend = present.PendingDrawings(max_items=2, max_age_s=60)
    keys = [pend.put(r, f"/tmp/x{i}") for i, r in enumerate(reports)]
    assert len(pend) == 2 and pend.take(keys[0]) is None and pend.take(keys[1]) is None, "oldest dropped first"
    report, folder = pend.take(keys[3])
    assert report is reports[3] and str(folder) == "/tmp/x3"
    assert pend.take(keys[3]) is None and pend.take(None) is None and pend.take("nonsense") is None
    old = present.PendingDrawings(max_items=8, max_age_s=0.0)
    k = old.put(reports[0], "/tmp/y")
    time.sleep(0.01)
    assert old.take(k) is None and len(old) == 0, "expired"


def test_summary_answers_without_drawing(tmp_path):
    """The answer (badge, cards, JSON) is written before any heatmap is drawn; outputs() is both."""
    rep = _report(Verdict.FAKE, p=0.9)
    s = present.summary(rep, tmp_path)
    assert s.verdict == rep.verdict and "Face 1" in s.faces_html and Path(s.json_path).parent == tmp_path
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"], "nothing drawn or encoded yet"
    both = present.outputs(rep, 0.5, False, lambda *a: None, tmp_path / "b")
    assert both.verdict == s.verdict and len(both.frames) == 1 and both.video is None
