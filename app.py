"""Gradio app: the interactive demo (local, Hugging Face Space, share link).

Layout and event wiring only: every analysis runs in ``deepfake_demo`` (imported
lazily, so importing this file does not import torch), what the page shows is
built by ``deepfake_demo.present`` (no Gradio there) and every picture is drawn
by ``deepfake_demo.render`` from the Report.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--weights DIR_OR_HUB_ID] [--device cpu|cuda|auto]

Environment: DEEPFAKE_DEMO_HOST, DEEPFAKE_DEMO_PORT, DEEPFAKE_DEMO_SHARE (1/true),
DEEPFAKE_DEMO_WEIGHTS, DEEPFAKE_DEMO_DEVICE, DEEPFAKE_DEMO_CONCURRENCY, DEEPFAKE_DEMO_QUEUE_SIZE,
DEEPFAKE_DEMO_MAX_UPLOAD_MB (default 200), DEEPFAKE_DEMO_MAX_VIDEO_S (default 300).
"""
from __future__ import annotations

import argparse
import html
import logging
import os
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from deepfake_demo import present
from deepfake_demo.cards import how_often_wrong, reader_markdown
from deepfake_demo.present import AppConfig

__all__ = ["build_demo", "make_handlers", "main", "AppConfig"]

log = logging.getLogger("deepfake_demo.app")

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"


# ---------------------------------------------------------------- handlers

def make_handlers(config: AppConfig) -> tuple[Callable[..., tuple], Callable[..., tuple], Callable[..., tuple]]:
    """(analyze_image, analyze_video, draw) for ``config``. The first two are the API endpoints: they
    answer (verdict, badge, face cards, JSON report) as soon as the library is done, and leave the report
    for ``draw``, the page's second step (frames, face panels, plot, annotated video), under a key (the
    last output: a State, which API callers never see)."""

    trust = how_often_wrong(present.read_weights(config).cards)  # the cards' measured error rates, read once
    pending = present.PendingDrawings()

    def run(path: str | None, kind: str, frames: int | None, models: Sequence[str] | None, threshold: float,
            aggregation: str | None, progress) -> tuple:
        try:
            report = present.analyze(config, path, kind, frames, models, threshold, aggregation, progress)
            out_dir = present.request_dir()
            answer = present.summary(report, out_dir, trust=trust)
        except present.AppError as exc:
            raise gr.Error(str(exc), title=exc.title) from None
        except Exception as exc:  # never a stack trace in the UI; the log keeps it
            log.exception("analysis of %s failed", path)
            raise gr.Error(f"Internal error while analysing ({exc.__class__.__name__}: {exc})") from None
        key = pending.put(report, out_dir) if report.ok and report.frames else None
        return answer.verdict, answer.badge_html, answer.faces_html, answer.json_path, key

    def analyze_image(image: str | None, models: list[str] | None = None, threshold: float = 0.5,
                      opacity: float = 0.5, aggregation: str = "confident", progress=gr.Progress()) -> tuple:
        """Analyse an image file. Outputs: verdict, badge HTML, face cards HTML, JSON report path (and,
        for the page, the key of its drawings). ``opacity`` is the page's heatmap opacity (drawings only)."""
        return run(image, "image", 1, models, threshold, aggregation, progress)

    def analyze_video(video: str | None, frames: int = 32, models: list[str] | None = None,
                      threshold: float = 0.5, opacity: float = 0.5, aggregation: str = "confident",
                      progress=gr.Progress()) -> tuple:
        """Analyse a video file; outputs as analyze_image."""
        return run(video, "video", int(frames), models, threshold, aggregation, progress)

    def draw(key: str | None, opacity: float = 0.5, progress=gr.Progress()) -> tuple:
        """The page's second step: the drawings of the report left under ``key``, each output shown
        only where it has something to show. Outputs: frames, face panels, plot, annotated video, key (cleared)."""
        hidden = gr.update(value=None, visible=False)
        item = pending.take(key)
        if item is None:  # no frames (an ERROR), or it expired under load: the answer stands alone
            return hidden, hidden, hidden, hidden, None
        report, out_dir = item
        try:
            d = present.drawings(report, float(opacity), report.kind == "video", progress, out_dir)
        except Exception as exc:  # the verdict is already shown: say the drawings failed, keep it
            log.exception("drawing %s failed", report.path)
            raise gr.Error(f"The verdict stands, but drawing its heatmaps failed ({exc.__class__.__name__}: "
                           f"{exc})") from None
        show = lambda v: gr.update(value=v, visible=bool(v) if not hasattr(v, "axes") else True)  # noqa: E731
        return show(d.frames), show(d.faces), show(d.plot), show(d.video), None

    return analyze_image, analyze_video, draw


def _shown(faces_html: str | None) -> tuple:
    """After an answer: the face cards (when there are any) and the JSON report. Its own step, so the
    API's outputs stay plain values."""
    return gr.update(visible=bool(faces_html)), gr.update(visible=True)


def _cleared() -> tuple:
    """The result area with no result: the placeholder, everything else hidden and emptied."""
    hidden = gr.update(value=None, visible=False)
    return (None, present.PLACEHOLDER_HTML) + (hidden,) * 6 + (None,)


def _warm_up(config: AppConfig) -> None:
    """Load the models in the background at start-up so the first click is fast."""
    try:
        present.load_detector(config)
    except present.AppError:
        pass  # the banner already says so; requests will say it again


# ---------------------------------------------------------------- layout

def _example_files(kind: str) -> list[str]:
    exts = (".jpg", ".jpeg", ".png") if kind == "image" else (".mp4", ".webm")
    return sorted(str(p) for p in EXAMPLES.glob("*") if p.suffix.lower() in exts)


def build_demo(config: AppConfig | None = None) -> gr.Blocks:
    """The Blocks app (not launched), for ``config`` (default: from the environment).
    Reads the model cards (JSON only); the models themselves load on first use or in
    :func:`main`'s warm-up."""
    from deepfake_demo.aggregate import STRATEGIES
    from deepfake_demo.config import DECISION, LIMITS

    config = config or AppConfig.from_env()
    weights = present.read_weights(config)
    names = weights.names
    threshold = present.card_slider_threshold(weights)
    analyze_image, analyze_video, draw = make_handlers(config)

    # delete_cache: Gradio's own copies of uploads and outputs go after an hour, like ours.
    with gr.Blocks(title="Deepfake detector",
                   delete_cache=(present.OUTPUT_MAX_AGE_S, present.OUTPUT_MAX_AGE_S)) as demo:
        gr.Markdown("# Deepfake detector\nUpload a photo or a video with faces. Every face is scored by an "
                    "ensemble of image classifiers; the heatmaps show where they looked.")
        if weights.problem:
            gr.Markdown(f'<div class="warn-box" id="no-weights">{weights.problem}</div>')
        if weights.warnings:
            gr.Markdown('<div class="warn-box" id="weights-warning">&#9888; ' +
                        "<br>&#9888; ".join(html.escape(w) for w in weights.warnings) + "</div>")

        imgs, vids = _example_files("image"), _example_files("video")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                with gr.Tabs():
                    with gr.Tab("Image", id="image-tab"):
                        image_in = gr.Image(type="filepath", image_mode=None, label="Image", elem_id="image-input",
                                            sources=["upload", "webcam", "clipboard"], height=300)
                        image_btn = gr.Button("Analyse image", variant="primary", elem_id="analyze-image")
                        if imgs:
                            gr.Examples(imgs, inputs=[image_in], example_labels=[present.example_label(p) for p in imgs],
                                        label="Examples made by this project: click one to load it",
                                        cache_examples=False, elem_id="image-examples")
                    with gr.Tab("Video", id="video-tab"):
                        video_in = gr.Video(label="Video", sources=["upload", "webcam"], height=300, elem_id="video-input")
                        frames_in = gr.Slider(1, LIMITS.max_frames_analyzed, value=DECISION.default_frames,
                                              step=1, label="Frames to analyse", elem_id="frames",
                                              info="sampled evenly; more = slower but steadier")
                        video_btn = gr.Button("Analyse video", variant="primary", elem_id="analyze-video")
                        if vids:
                            gr.Examples(vids, inputs=[video_in], example_labels=[present.example_label(p) for p in vids],
                                        label="Examples made by this project: click one to load it",
                                        cache_examples=False, elem_id="video-examples")
                with gr.Accordion("Settings: models, threshold, heatmaps", open=False, elem_id="settings"):
                    models_in = gr.CheckboxGroup(names, value=names, label="Models of the ensemble",
                                                 info="untick to see one model alone")
                    threshold_in = gr.Slider(*present.SLIDER_RANGE, value=threshold, step=0.01,
                                             label="Decision threshold",
                                             info=f"default {threshold:.2f}: from the model cards (on probabilities calibrated on validation); "
                                                  f"uncertain within ±{DECISION.uncertain_band:g} of it")
                    opacity_in = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heatmap opacity")
                    aggregation_in = gr.Dropdown(sorted(STRATEGIES), value=DECISION.aggregation,
                                                 label="How a face's frames are combined")
            with gr.Column(scale=3, min_width=300):
                # The API's first output; the page shows the coloured badge below instead of repeating it.
                verdict_out = gr.Label(label="Verdict", elem_id="verdict-label", visible=False)
                # the one place a run's progress shows (show_progress_on below)
                badge_out = gr.HTML(present.PLACEHOLDER_HTML, label="Summary", elem_id="badge", min_height=120)
                faces_out = gr.HTML(label="Faces", elem_id="faces", visible=False)
                # the figure titles itself (over time for a video, per model for an image); a label would cover its top
                plot_out = gr.Plot(label="Fake probability", show_label=False, elem_id="plot", visible=False)

        # JPEG, not Gradio's default WebP: WebP took 0.12 s per 1080p frame here (3.7 s for 32), JPEG 0.005 s
        frames_out = gr.Gallery(label="Analysed frames (boxes, scores, heatmaps): click to enlarge",
                                columns=4, height=360, object_fit="contain", preview=False, format="jpeg",
                                elem_id="frames-gallery", visible=False)
        faces_gallery_out = gr.Gallery(label="Face crops and their heatmaps (crop, ensemble, each model)",
                                       columns=4, height=360, object_fit="contain", preview=False, format="jpeg",
                                       elem_id="faces-gallery", visible=False)
        with gr.Row():
            video_out = gr.Video(label="Annotated video: the analysed frames, each held until the next one's "
                                       "time in the source (a slideshow, not every frame)",
                                 elem_id="annotated-video", height=480, interactive=False, visible=False)
            json_out = gr.File(label="JSON report", elem_id="json-report", interactive=False, visible=False)
        with gr.Accordion("How to read this", open=False):
            gr.Markdown(present.HOW_TO_READ)
        with gr.Accordion("Model card", open=False):
            gr.Markdown(reader_markdown(list(weights.cards), weights.ensemble_card), elem_id="model-card")

        pending = gr.State(None)  # the key of the drawings that follow the answer (present.PendingDrawings)
        answer = [verdict_out, badge_out, faces_out, json_out, pending]
        drawn = [frames_out, faces_gallery_out, plot_out, video_out, pending]
        # Each set of models has its own card threshold: the slider follows the ticked models.
        models_in.change(lambda m: gr.update(value=present.card_slider_threshold(weights, m or None)),
                         models_in, threshold_in, api_visibility="private")
        # The answer first, with the run's progress bar on the result area (which a phone scrolls to);
        # then the face cards and report show, and the drawings follow with their own small progress.
        progress_on = dict(show_progress="full", show_progress_on=[badge_out], scroll_to_output=True)
        then_show = dict(fn=_shown, inputs=[faces_out], outputs=[faces_out, json_out], api_visibility="private",
                         show_progress="hidden")
        then_draw = dict(fn=draw, inputs=[pending, opacity_in], outputs=drawn, api_visibility="private",
                         show_progress="minimal", show_progress_on=[faces_out], concurrency_id="draw")
        image_btn.click(analyze_image, [image_in, models_in, threshold_in, opacity_in, aggregation_in], answer,
                        api_name="analyze_image", **progress_on).success(**then_show).success(**then_draw)
        video_btn.click(analyze_video, [video_in, frames_in, models_in, threshold_in, opacity_in, aggregation_in],
                        answer, api_name="analyze_video", **progress_on).success(**then_show).success(**then_draw)
        # a new input clears the last result: no verdict on screen that belongs to another file
        cleared = [verdict_out, badge_out, faces_out, frames_out, faces_gallery_out, plot_out, video_out, json_out,
                   pending]
        for source in (image_in, video_in):
            source.change(_cleared, None, cleared, api_visibility="private", show_progress="hidden")
    return demo


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _device(value: str) -> str:
    """argparse type for --device: cpu, cuda, cuda:N or auto."""
    v = value.strip().lower()
    if v in ("cpu", "cuda", "auto") or re.fullmatch(r"cuda:\d+", v):
        return v
    raise argparse.ArgumentTypeError(f"unknown device {value!r}; use cpu, cuda or auto")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        env = AppConfig.from_env()
    except ValueError as exc:  # a bad $DEEPFAKE_DEMO_* value: say which, no traceback
        raise SystemExit(f"error: {exc}") from None
    p = argparse.ArgumentParser(description="Deepfake detector web app (Gradio).")
    p.add_argument("--host", default=os.environ.get("DEEPFAKE_DEMO_HOST", "127.0.0.1"),
                   help="interface to listen on (0.0.0.0 for all; $DEEPFAKE_DEMO_HOST)")
    p.add_argument("--port", type=int, default=int(os.environ.get("DEEPFAKE_DEMO_PORT", "7860")),
                   help="port ($DEEPFAKE_DEMO_PORT, default 7860)")
    p.add_argument("--share", action="store_true", default=_env_bool("DEEPFAKE_DEMO_SHARE"),
                   help="also serve through a public gradio.live link ($DEEPFAKE_DEMO_SHARE=1)")
    p.add_argument("--weights", default=env.weights, help="weights directory or Hub repo id ($DEEPFAKE_DEMO_WEIGHTS)")
    p.add_argument("--device", type=_device, default=env.device,
                   help="cpu, cuda or auto: CUDA when there is a GPU ($DEEPFAKE_DEMO_DEVICE, default auto)")
    p.add_argument("--no-warm-up", action="store_true", help="load the models on the first request instead")
    args = p.parse_args(argv)  # argparse passes a string default (from the environment) through _device too
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = replace(env, weights=args.weights or None, device=args.device)
    demo = build_demo(config)
    demo.queue(default_concurrency_limit=int(os.environ.get("DEEPFAKE_DEMO_CONCURRENCY", "1")),
               max_size=int(os.environ.get("DEEPFAKE_DEMO_QUEUE_SIZE", "16")))
    if not args.no_warm_up:
        threading.Thread(target=_warm_up, args=(config,), daemon=True).start()
    # On a Space the platform sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; they win over our defaults.
    host = os.environ.get("GRADIO_SERVER_NAME") or args.host
    port = int(os.environ.get("GRADIO_SERVER_PORT") or args.port)
    demo.launch(server_name=host, server_port=port, share=args.share, show_error=True, css=present.CSS,
                theme=gr.themes.Soft(), max_file_size=f"{config.max_upload_mb:g}mb")


if __name__ == "__main__":
    main()
