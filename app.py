"""Gradio app: the interactive demo (local, Hugging Face Space, share link).

Components and event wiring only: every analysis runs in ``deepfake_demo``
(imported lazily, so importing this file does not import torch) and every
picture is drawn by ``deepfake_demo.render`` from the Report.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--weights DIR_OR_HUB_ID]

Environment: DEEPFAKE_DEMO_HOST, DEEPFAKE_DEMO_PORT, DEEPFAKE_DEMO_SHARE (1/true),
DEEPFAKE_DEMO_WEIGHTS, DEEPFAKE_DEMO_CONCURRENCY, DEEPFAKE_DEMO_QUEUE_SIZE.
"""
from __future__ import annotations

import argparse
import html
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

import gradio as gr

__all__ = ["build_demo", "analyze_image", "analyze_video", "main", "AppConfig"]

log = logging.getLogger("deepfake_demo.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
VERDICT_COLOURS = {
    "FAKE": "#dc2626", "REAL": "#16a34a", "UNCERTAIN": "#ea8c00", "NO_FACE": "#64748b", "ERROR": "#64748b",
}
_CSS = """
.verdict-badge {border-radius: 12px; padding: 14px 18px; color: #fff; margin-bottom: 6px}
.verdict-badge .v {font-size: 2.1em; font-weight: 800; letter-spacing: .04em; line-height: 1.1}
.verdict-badge .p {font-size: 1.05em; opacity: .95}
.verdict-badge .r {font-size: .95em; opacity: .92; margin-top: 4px}
.warn-box {border: 2px solid #b91c1c; background: #fef2f2; color: #7f1d1d; border-radius: 10px;
           padding: 10px 14px; margin: 6px 0; font-weight: 600}
.face-cards {display: flex; flex-wrap: wrap; gap: 10px}
.face-card {border: 1px solid #cbd5e1; border-left: 8px solid var(--c); border-radius: 10px;
            padding: 8px 12px; min-width: 220px; flex: 1 1 220px; max-width: 420px}
.face-card .h {font-weight: 700; font-size: 1.05em}
.pill {display: inline-block; border-radius: 999px; padding: 1px 9px; color: #fff; font-size: .85em;
       font-weight: 700; background: var(--c)}
.small {font-size: .88em; opacity: .85}
/* Gradio's grid gives a lone item the whole width (a square as wide as the page, cropped by the
   gallery's height); auto-fill keeps empty tracks, so one image (the Image tab) stays a thumbnail. */
#frames-gallery .grid-container, #faces-gallery .grid-container {
  grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)) !important}
table.probs {border-collapse: collapse; margin-top: 4px; font-size: .92em}
table.probs td {padding: 1px 10px 1px 0}
"""

HOW_TO_READ = """
### How to read this
- **Verdict.** FAKE or REAL only when the calibrated fake probability of the most suspicious face is
  clearly beyond the threshold (outside the *uncertain band* around it); otherwise UNCERTAIN.
  The models disagreeing strongly also gives UNCERTAIN. NO FACE means nothing was judged: it is
  **not** a REAL verdict.
- **Probability.** The ensemble's calibrated probability that a face was manipulated: the members'
  temperature-scaled logits are averaged. Per face, the frames are combined by the chosen
  aggregation ("confident" = mean of the clearly fake frames when there are enough of them).
  One swapped face makes the whole file fake, so the most suspicious face decides.
- **Heatmaps (Grad-CAM).** Red = regions that pushed the models towards *fake*. They show where the
  models looked, not proof of manipulation; on a real face they may light up anywhere.
- **Threshold.** Lower it to catch more fakes at the price of more false alarms on real (e.g.
  heavily compressed) video.
- **Limits.** The models only know the kinds of fakes they were trained on (see the model card);
  new generators, heavy compression, tiny or side-on faces, and filters can fool them. They are
  **not a GAN detector**: a face made whole by a generator is usually called REAL. A **soft** face
  (blurred, upscaled or smoothed) gets a warning: blur alone pushes these models towards FAKE.
  Use this as one signal among others, never as proof.
"""


class AppConfig:
    """Where the weights are; set by :func:`main` or ``$DEEPFAKE_DEMO_WEIGHTS``."""

    weights: str | None = None


def _weights() -> str | None:
    return AppConfig.weights or os.environ.get("DEEPFAKE_DEMO_WEIGHTS") or None


# ---------------------------------------------------------------- library calls

def _detector():
    """The cached Detector (loaded once per process). Raises gr.Error with the
    library's message when there are no usable weights."""
    from deepfake_demo.models import NoWeightsError, WeightsError
    from deepfake_demo.pipeline import Detector

    try:
        return Detector.load(_weights(), "cpu")
    except NoWeightsError as exc:
        raise gr.Error(f"No trained weights: {exc}", title="No trained weights") from None
    except (WeightsError, RuntimeError) as exc:
        raise gr.Error(f"The models could not be loaded: {exc}", title="Weights problem") from None


def _cards_status() -> tuple[list[Any], str | None]:
    """Model cards (read from JSON only, no torch) and an error message if there are none."""
    from deepfake_demo.models import NoWeightsError, WeightsError, read_cards, read_ensemble_card, resolve_weights_dir

    try:
        wdir = resolve_weights_dir(_weights())
        cards = read_cards(wdir)
        read_ensemble_card(wdir)  # a broken ensemble card stops the library too: say so up front
        return cards, None
    except NoWeightsError as exc:
        return [], f"<b>No trained weights found.</b> {html.escape(str(exc))}"
    except WeightsError as exc:
        return [], f"<b>The weights cannot be used.</b> {html.escape(str(exc))}"


def _card_threshold(cards: Sequence[Any], default: float, models: Sequence[str] | None = None) -> float:
    """The threshold the library uses when none is given, for these models (all
    by default): the ensemble card's for all members, else the members' own,
    rounded to the slider's step."""
    if not cards:
        return default
    from deepfake_demo.models import WeightsError, card_threshold, read_ensemble_card

    try:
        ens_card = read_ensemble_card(cards[0].weights_path.parent)
    except WeightsError:
        ens_card = None
    return round(min(0.95, max(0.05, card_threshold(cards, ens_card, models or None))), 2)


def _threshold_for_library(threshold: float, models: Sequence[str] | None) -> float | None:
    """None (the library's exact card threshold) while the slider sits at the
    rounded default for the chosen models; the slider's value once moved."""
    from deepfake_demo.config import DECISION

    default = _card_threshold(_cards_status()[0], DECISION.threshold, models)
    return None if abs(float(threshold) - default) < 1e-9 else float(threshold)


def _warm_up() -> None:
    """Load the models in the background at start-up so the first click is fast."""
    try:
        _detector()
    except gr.Error:
        pass  # the banner already says so; requests will say it again


# ---------------------------------------------------------------- HTML pieces

def _esc(x: Any) -> str:
    return html.escape(str(x))


def _badge_html(report) -> str:
    v = report.verdict
    c = VERDICT_COLOURS.get(v, "#64748b")
    parts = [f'<div class="verdict-badge" style="background:{c}" id="verdict-badge">',
             f'<div class="v">{_esc(v.replace("_", " "))}</div>']
    if report.fake_probability is not None:
        lo = max(0.0, report.threshold - report.uncertain_band)
        hi = min(1.0, report.threshold + report.uncertain_band)
        parts.append(f'<div class="p">calibrated fake probability <b>{report.fake_probability:.2f}</b>'
                     f' &middot; threshold {report.threshold:.2f} (uncertain {lo:.2f}&ndash;{hi:.2f})</div>')
    parts.append(f'<div class="r">{_esc(report.reason)}</div></div>')
    if report.warnings:
        parts.append('<div class="warn-box">&#9888; ' + "<br>&#9888; ".join(_esc(w) for w in report.warnings)
                     + "</div>")
    if report.models:
        rows = "".join(f"<tr><td>{_esc(k)}</td><td><b>{v:.3f}</b></td></tr>" for k, v in report.models.items())
        parts.append(f'<div class="small">per-model fake probability (deciding face):</div>'
                     f'<table class="probs">{rows}</table>')
    if report.ok:
        span = f"{report.frames_analyzed} frame(s) analysed" if report.kind == "video" else "image"
        size = f"{report.width}&times;{report.height}" if report.width else ""
        parts.append(f'<div class="small">{span} &middot; {size} &middot; {report.seconds:.1f} s</div>')
    return "".join(parts)


def _faces_html(report) -> str:
    if not report.faces:
        return f'<div class="small">{_esc("No face tracks." if report.ok else "")}</div>'
    cards = []
    for t in report.faces:
        c = VERDICT_COLOURS.get(t.verdict, "#64748b")
        first, last = t.observations[0].time_s, t.observations[-1].time_s
        where = (f"{len(t.observations)} frame(s), {first:.1f}&ndash;{last:.1f} s" if report.kind == "video"
                 else "in the image")
        models = ", ".join(f"{_esc(k)} {v:.2f}" for k, v in t.models.items())
        cards.append(
            f'<div class="face-card" style="--c:{c}"><div class="h">Face {t.id} '
            f'<span class="pill">{_esc(t.verdict)}</span> {t.fake_probability:.2f}</div>'
            f'<div class="small">{where}</div><div class="small">{models}</div>'
            f'<div class="small">{_esc(t.reason)}</div></div>')
    return '<div class="face-cards">' + "".join(cards) + "</div>"


_CARD_FIRST = ("description", "trained_on", "training_data", "data", "intended_use", "license", "validation",
               "test", "metrics", "evaluation", "limits", "limitations", "known_limits")
_CARD_SKIP = {"name", "arch", "sha256", "weights_file", "mean", "std", "interpolation", "warning", "input_size",
              "crop_margin", "temperature", "threshold"}


def _card_markdown(cards: Sequence[Any]) -> str:
    """The model card(s) as Markdown, from each card's JSON ``info``: what it was
    trained on, measured accuracy and limits first, the training config folded away."""
    if not cards:
        return "No model card: no weights are loaded."
    out = []
    for card in cards:
        info = dict(card.info)
        sp = card.spec
        out.append(f"#### {card.name} (`{sp.arch}`, {sp.input_size}px, crop margin {sp.crop_margin:g}, "
                   f"temperature {sp.temperature:g}, threshold {sp.threshold:g})")
        if card.warning:
            out.append(f"> **Warning: {card.warning}**")
        keys = [k for k in _CARD_FIRST if k in info]
        keys += sorted(k for k in info if k not in _CARD_SKIP and k not in keys and k != "train_config")
        for key in keys:
            val = info[key]
            if isinstance(val, dict):
                val = "; ".join(f"{k}: {_fmt(v)}" for k, v in val.items())
            elif isinstance(val, (list, tuple)):
                val = "; ".join(_fmt(v) for v in val)
            else:
                val = _fmt(val)
            out.append(f"- **{key.replace('_', ' ')}**: {val}")
        out.append(f"- **weights**: `{card.weights_path.name}` sha256 `{card.sha256[:16]}...`")
        if isinstance(info.get("train_config"), dict):
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                           for k, v in info["train_config"].items())
            out.append(f"\n<details><summary>training configuration</summary><table>{rows}</table></details>\n")
    from deepfake_demo.models import WeightsError, read_ensemble_card

    try:
        ens = read_ensemble_card(cards[0].weights_path.parent)
    except WeightsError as exc:
        ens = None
        out.append(f"> {html.escape(str(exc))}")
    if ens and ens["members"] == sorted(c.name for c in cards):
        val = ens.get("validation") or {}
        out.append(f"#### Ensemble ({', '.join(ens['members'])}): temperature {ens['temperature']:g}, "
                   f"threshold {ens['threshold']:g}")
        out.append("- **rule**: mean of the members' calibrated logits, divided by the ensemble temperature "
                   "(fitted on the validation split)")
        if ens.get("threshold_rule"):
            out.append(f"- **threshold rule**: {ens['threshold_rule']}")
        if val:
            out.append(f"- **validation**: {_fmt(val)}")
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


# ---------------------------------------------------------------- handlers

def _outputs(report, opacity: float, want_video: bool, progress) -> tuple:
    """Everything the UI shows for one Report, in output order."""
    from deepfake_demo import render

    faces_gallery, frames_gallery, video, plot = [], [], None, None
    out_dir = _request_dir()

    def when_obs(o) -> str:
        return f", t={o.time_s:.2f}s" if report.kind == "video" else ""

    if report.ok and report.frames:
        progress(0.96, "drawing heatmaps")
        by_frame = render.observations_by_frame(report)
        show_all = report.kind != "video" or not report.faces  # NO FACE: show what was looked at
        for img, f in zip(render.annotated_frames(report, opacity), report.frames):
            n = len(by_frame.get(f.index, []))
            if n or show_all:
                when = f"t={f.time_s:.2f}s frame {f.index}: " if report.kind == "video" else ""
                frames_gallery.append((img, f"{when}{n} face(s)"))
        for t in report.faces:
            for o in t.observations:
                if o.crop is not None:
                    faces_gallery.append((render.face_panel_grid(o, opacity),
                                          f"face {t.id}{when_obs(o)}: {o.fake_probability:.2f}"))
        plot = render.probability_figure(report)
        if want_video and report.kind == "video":
            progress(0.98, "writing annotated video")
            video = str(render.write_annotated_video(report, out_dir / f"{_stem(report)}_annotated.mp4", opacity))
    json_path = out_dir / f"{_stem(report)}_report.json"
    json_path.write_text(report.to_json(indent=2))
    return (report.verdict, _badge_html(report), _faces_html(report), frames_gallery, faces_gallery, plot,
            gr.update(value=video, visible=video is not None), str(json_path))


OUTPUT_MAX_AGE_S = 3600


def _request_dir() -> Path:
    """A fresh folder for one request's files (Gradio copies them into its own
    cache); folders older than an hour are swept so a long-running Space does not fill its disk."""
    import shutil
    import time

    base = Path(tempfile.gettempdir()) / "deepfake_demo_app"
    base.mkdir(exist_ok=True)
    now = time.time()
    for old in base.iterdir():
        try:
            if now - old.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # another worker removed it first
    return Path(tempfile.mkdtemp(dir=base))


def _stem(report) -> str:
    import re

    return re.sub(r"[^\w.-]+", "_", Path(report.path).stem if report.path else "input")[:60] or "input"


def _run(path: str | None, kind: str, frames: int | None, models: Sequence[str] | None, threshold: float,
         opacity: float, aggregation: str | None, progress) -> tuple:
    if not path:
        raise gr.Error(f"Please upload {'an image' if kind == 'image' else 'a video'} first.")
    if not 0.0 < float(threshold) < 1.0:
        raise gr.Error("The threshold must be between 0 and 1.")
    det = _detector()
    if models is not None and not list(models):
        raise gr.Error("Select at least one model.")
    progress(0.0, "starting")
    try:
        report = det.analyze(path, frames=frames, heatmaps=True, threshold=_threshold_for_library(threshold, models),
                             aggregation=aggregation or None, models=list(models) if models else None,
                             progress=lambda f, d: progress(0.95 * f, d))
        return _outputs(report, float(opacity), kind == "video", progress)
    except gr.Error:
        raise
    except Exception as exc:  # never a stack trace in the UI; the log keeps it
        log.exception("analysis of %s failed", path)
        raise gr.Error(f"Internal error while analysing ({exc.__class__.__name__}: {exc})") from None


def analyze_image(image: str | None, models: list[str] | None = None, threshold: float = 0.5,
                  opacity: float = 0.5, aggregation: str = "confident",
                  progress=gr.Progress()) -> tuple:
    """Analyse an image file. Outputs: verdict, badge HTML, face cards HTML, annotated
    frames, face panels, probability plot, annotated video (None), JSON report path."""
    return _run(image, "image", 1, models, threshold, opacity, aggregation, progress)


def analyze_video(video: str | None, frames: int = 32, models: list[str] | None = None, threshold: float = 0.5,
                  opacity: float = 0.5, aggregation: str = "confident", progress=gr.Progress()) -> tuple:
    """Analyse a video file; outputs as :func:`analyze_image`, with the annotated video."""
    return _run(video, "video", int(frames), models, threshold, opacity, aggregation, progress)


# ---------------------------------------------------------------- layout

def _example_files(kind: str) -> list[str]:
    exts = (".jpg", ".jpeg", ".png") if kind == "image" else (".mp4", ".webm")
    return sorted(str(p) for p in EXAMPLES.glob("*") if p.suffix.lower() in exts)


def build_demo() -> gr.Blocks:
    """The Blocks app (not launched). Reads the model cards (JSON only); the
    models themselves load on first use or in :func:`main`'s warm-up."""
    from deepfake_demo.aggregate import STRATEGIES
    from deepfake_demo.config import DECISION, LIMITS

    cards, problem = _cards_status()
    names = [c.name for c in cards]
    threshold = _card_threshold(cards, DECISION.threshold)
    card_warnings = [f"{c.name}: {c.warning}" for c in cards if c.warning]

    # delete_cache: Gradio's own copies of uploads and outputs go after an hour, like ours.
    with gr.Blocks(title="Deepfake detector", delete_cache=(OUTPUT_MAX_AGE_S, OUTPUT_MAX_AGE_S)) as demo:
        gr.Markdown("# Deepfake detector\nUpload a photo or a video with faces. Every face is scored by an "
                    "ensemble of image classifiers; the heatmaps show where they looked.")
        if problem:
            gr.Markdown(f'<div class="warn-box" id="no-weights">{problem}</div>')
        if card_warnings:
            gr.Markdown('<div class="warn-box" id="weights-warning">&#9888; ' +
                        "<br>&#9888; ".join(html.escape(w) for w in card_warnings) + "</div>")

        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Image", id="image-tab"):
                        image_in = gr.Image(type="filepath", image_mode=None, label="Image", elem_id="image-input",
                                            sources=["upload", "webcam", "clipboard"], height=320)
                        image_btn = gr.Button("Analyse image", variant="primary", elem_id="analyze-image")
                    with gr.Tab("Video", id="video-tab"):
                        video_in = gr.Video(label="Video", sources=["upload", "webcam"], height=320, elem_id="video-input")
                        frames_in = gr.Slider(1, LIMITS.max_frames_analyzed, value=DECISION.default_frames,
                                              step=1, label="Frames to analyse", elem_id="frames",
                                              info="sampled evenly; more = slower but steadier")
                        video_btn = gr.Button("Analyse video", variant="primary", elem_id="analyze-video")
                with gr.Accordion("Settings", open=True):
                    models_in = gr.CheckboxGroup(names, value=names, label="Models of the ensemble",
                                                 info="untick to see one model alone")
                    threshold_in = gr.Slider(0.05, 0.95, value=threshold, step=0.01,
                                             label="Decision threshold",
                                             info=f"default {threshold:.2f}: from the model cards (on probabilities calibrated on validation); "
                                                  f"uncertain within ±{DECISION.uncertain_band:g} of it")
                    opacity_in = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heatmap opacity")
                    aggregation_in = gr.Dropdown(sorted(STRATEGIES), value=DECISION.aggregation,
                                                 label="How a face's frames are combined")
            with gr.Column(scale=3, min_width=420):
                # The API's first output; the page shows the coloured badge below instead of repeating it.
                verdict_out = gr.Label(label="Verdict", elem_id="verdict-label", visible=False)
                badge_out = gr.HTML(label="Summary", elem_id="badge")
                faces_out = gr.HTML(label="Faces", elem_id="faces")
                # the figure titles itself (over time for a video, per model for an image); a label would cover its top
                plot_out = gr.Plot(label="Fake probability", show_label=False, elem_id="plot")

        with gr.Row():
            frames_out = gr.Gallery(label="Analysed frames (boxes, scores, heatmaps): click to enlarge",
                                    columns=4, height=360, object_fit="contain", preview=False,
                                    elem_id="frames-gallery")
        with gr.Row():
            faces_gallery_out = gr.Gallery(label="Face crops and their heatmaps (crop, ensemble, each model)",
                                           columns=4, height=360, object_fit="contain", preview=False,
                                           elem_id="faces-gallery")
        with gr.Row():
            video_out = gr.Video(label="Annotated video (analysed frames)", elem_id="annotated-video", height=480,
                                 interactive=False, visible=False)
            json_out = gr.File(label="JSON report", elem_id="json-report", interactive=False)
        with gr.Accordion("How to read this", open=False):
            gr.Markdown(HOW_TO_READ)
        with gr.Accordion("Model card", open=False):
            gr.Markdown(_card_markdown(cards), elem_id="model-card")

        outputs = [verdict_out, badge_out, faces_out, frames_out, faces_gallery_out, plot_out, video_out, json_out]
        # Each set of models has its own card threshold: the slider follows the ticked models.
        models_in.change(lambda m: gr.update(value=_card_threshold(cards, DECISION.threshold, m or None)),
                         models_in, threshold_in, api_visibility="private")
        image_btn.click(analyze_image, [image_in, models_in, threshold_in, opacity_in, aggregation_in], outputs,
                        api_name="analyze_image")
        video_btn.click(analyze_video, [video_in, frames_in, models_in, threshold_in, opacity_in, aggregation_in],
                        outputs, api_name="analyze_video")

        imgs, vids = _example_files("image"), _example_files("video")
        if imgs:
            gr.Examples(imgs, inputs=[image_in], label="Example images (made by this project)",
                        cache_examples=False)
        if vids:
            gr.Examples(vids, inputs=[video_in], label="Example videos (made by this project)",
                        cache_examples=False)
    return demo


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Deepfake detector web app (Gradio).")
    p.add_argument("--host", default=os.environ.get("DEEPFAKE_DEMO_HOST", "127.0.0.1"),
                   help="interface to listen on (0.0.0.0 for all; $DEEPFAKE_DEMO_HOST)")
    p.add_argument("--port", type=int, default=int(os.environ.get("DEEPFAKE_DEMO_PORT", "7860")),
                   help="port ($DEEPFAKE_DEMO_PORT, default 7860)")
    p.add_argument("--share", action="store_true", default=_env_bool("DEEPFAKE_DEMO_SHARE"),
                   help="also serve through a public gradio.live link ($DEEPFAKE_DEMO_SHARE=1)")
    p.add_argument("--weights", default=None, help="weights directory or Hub repo id ($DEEPFAKE_DEMO_WEIGHTS)")
    p.add_argument("--no-warm-up", action="store_true", help="load the models on the first request instead")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.weights:
        AppConfig.weights = args.weights
    demo = build_demo()
    demo.queue(default_concurrency_limit=int(os.environ.get("DEEPFAKE_DEMO_CONCURRENCY", "1")),
               max_size=int(os.environ.get("DEEPFAKE_DEMO_QUEUE_SIZE", "16")))
    if not args.no_warm_up:
        threading.Thread(target=_warm_up, daemon=True).start()
    # On a Space the platform sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; they win over our defaults.
    host = os.environ.get("GRADIO_SERVER_NAME") or args.host
    port = int(os.environ.get("GRADIO_SERVER_PORT") or args.port)
    demo.launch(server_name=host, server_port=port, share=args.share, show_error=True, css=_CSS,
                theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
