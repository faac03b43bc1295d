"""What the app shows, without Gradio: its settings, the weights it found, the
analysis call with its threshold logic, the HTML of the results, and the files it
writes per request. ``app.py`` keeps only the layout and the event wiring.

Nothing here imports gradio (the package never does) and nothing imports torch at
import time, so ``import app`` stays light; the library loads on first use.
"""
from __future__ import annotations

import html
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .config import DECISION, WEIGHTS_ENV

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Detector
    from .report import Report

__all__ = ["AppConfig", "AppError", "WeightsInfo", "Outputs", "CSS", "HOW_TO_READ", "DEVICE_ENV",
           "example_label", "PLACEHOLDER_HTML", "check_upload", "Summary", "Drawings", "summary", "drawings", "PendingDrawings", "OUTPUT_MAX_AGE_S", "SLIDER_RANGE", "read_weights", "slider_threshold", "card_slider_threshold",
           "library_threshold",
           "load_detector", "analyze", "badge_html", "faces_html", "request_dir", "outputs"]

DEVICE_ENV = "DEEPFAKE_DEMO_DEVICE"
OUTPUT_MAX_AGE_S = 3600
"""Request folders (and Gradio's cache, see ``app.build_demo``) older than this are swept."""
SLIDER_RANGE = (0.05, 0.95)
"""The threshold slider's ends; its step is 0.01."""

Progress = Callable[..., Any]  # progress(fraction 0..1, description); gr.Progress fits


@dataclass(frozen=True)
class AppConfig:
    """Where the app takes its weights from and where it runs them; built once in
    ``app.main`` (flags over environment) and handed to every handler."""

    weights: str | None = None  # directory or Hub repo id; None: $DEEPFAKE_DEMO_WEIGHTS, then weights/
    device: str = "auto"  # cpu, cuda[:N] or auto (CUDA when there is a GPU)
    # what one upload may be, stricter than the library's own limits (config.LIMITS) because a public
    # Space serves many people on one machine; Gradio refuses larger uploads before they land
    max_upload_mb: float = 200.0
    max_video_s: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AppConfig":
        """From $DEEPFAKE_DEMO_WEIGHTS, $DEEPFAKE_DEMO_DEVICE, $DEEPFAKE_DEMO_MAX_UPLOAD_MB and
        $DEEPFAKE_DEMO_MAX_VIDEO_S (unset or empty: the defaults)."""
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = (env.get(name) or "").strip()
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise ValueError(f"${name} must be a number, not {raw!r}") from None
            if not value > 0:
                raise ValueError(f"${name} must be above 0, not {raw!r}")
            return value

        return cls(weights=env.get(WEIGHTS_ENV) or None, device=env.get(DEVICE_ENV) or "auto",
                   max_upload_mb=number("DEEPFAKE_DEMO_MAX_UPLOAD_MB", cls.max_upload_mb),
                   max_video_s=number("DEEPFAKE_DEMO_MAX_VIDEO_S", cls.max_video_s))


def check_upload(config: AppConfig, path: str, kind: str) -> None:
    """Refuse, with a message, an upload beyond what this app takes (:class:`AppConfig`), before any
    model runs: its size, and for a video its duration as the container states it (a file whose
    duration cannot be read goes on to the library, which says what is wrong with it)."""
    try:
        mb = os.path.getsize(path) / 2 ** 20
    except OSError:
        return  # the library's message (missing / unreadable) is the better one
    if mb > config.max_upload_mb:
        raise AppError(f"This app takes files up to {config.max_upload_mb:g} MB; this one is {mb:.0f} MB. "
                       "The command line (python -m deepfake_demo scan) takes larger ones.", "File too large")
    if kind != "video":
        return
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if n > 0 and 0 < fps < 1000 and n / fps > config.max_video_s:
        raise AppError(f"This video is too long for this app: {_duration(n / fps)}; it takes videos up to "
                       f"{_duration(config.max_video_s)}. Trim it, or use the command line (python -m "
                       "deepfake_demo scan), which takes longer ones.", "Video too long")


def _duration(seconds: float) -> str:
    """'4 s', '1.5 min', '5 min': a video's length as a reader says it."""
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s".replace(".0 s", " s")
    return f"{seconds / 60:.1f} min".replace(".0 min", " min")


class AppError(Exception):
    """A problem to show the user as it is (no traceback): ``str(exc)`` and a ``title``."""

    def __init__(self, message: str, title: str = "Error"):
        super().__init__(message)
        self.title = title


# ---------------------------------------------------------------- weights and thresholds

@dataclass(frozen=True)
class WeightsInfo:
    """The model cards the app found (JSON only: no model is built), or why there are none.
    ``problem`` is HTML for the page's warning box; None when the weights look usable."""

    cards: tuple[Any, ...] = ()
    ensemble_card: Any = None
    problem: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cards]

    @property
    def warnings(self) -> list[str]:
        """Each card's warning (e.g. test-only weights), as "name: warning"."""
        from .cards import card_warnings

        return card_warnings(self.cards)


def read_weights(config: AppConfig) -> WeightsInfo:
    """Read the model cards where ``config`` points. A broken ensemble card stops the
    library too, so it is reported here, up front, rather than on the first click."""
    from .models import NoWeightsError, WeightsError, read_cards, read_ensemble_card, resolve_weights_dir

    try:
        wdir = resolve_weights_dir(config.weights)
        return WeightsInfo(tuple(read_cards(wdir)), read_ensemble_card(wdir))
    except NoWeightsError as exc:
        return WeightsInfo(problem=f"<b>No trained weights found.</b> {html.escape(str(exc))}")
    except WeightsError as exc:
        return WeightsInfo(problem=f"<b>The weights cannot be used.</b> {html.escape(str(exc))}")


def slider_threshold(threshold: float) -> float:
    """A threshold as the slider can show it: clipped to :data:`SLIDER_RANGE`, rounded to its 0.01 step."""
    lo, hi = SLIDER_RANGE
    return round(min(hi, max(lo, float(threshold))), 2)


def card_slider_threshold(info: WeightsInfo, models: Sequence[str] | None = None) -> float:
    """Where the slider starts for these models (all by default): the cards' threshold
    (:func:`~deepfake_demo.models.card_threshold`) as the slider shows it; the library's
    default where there are no cards."""
    if not info.cards:
        return slider_threshold(DECISION.threshold)
    from .models import card_threshold

    return slider_threshold(card_threshold(info.cards, info.ensemble_card, models or None))


def library_threshold(slider: float, default: float | None) -> float | None:
    """The threshold to pass to the library: None (its exact card threshold, e.g. 0.4237)
    while the slider sits at that default as the slider shows it (0.42); the slider's
    value once moved. ``default`` is the library's (:meth:`Detector.default_threshold`),
    None when unknown."""
    if default is not None and abs(float(slider) - slider_threshold(default)) < 1e-9:
        return None
    return float(slider)


def example_label(path: str | os.PathLike) -> str:
    """What an example file is, for its button: the project's examples are named ``*_real*`` (a real
    photo, or a zoom over one) and ``*_blended*`` (a face blended into the photo: fake)."""
    stem = Path(path).stem.lower()
    what = "zoom video" if "zoom" in stem else "photo"
    if "blended" in stem:
        tail = stem.rsplit("_", 1)[-1]
        return f"FAKE: face blended in ({what}{'' if tail in ('blended', 'zoom') else ' ' + tail})"
    if "real" in stem:
        return f"REAL: untouched {what}"
    return Path(path).name


PLACEHOLDER_HTML = ('<div class="placeholder" id="placeholder">The verdict appears here. Upload an image or a '
                    'video (or pick a labelled example), then press <b>Analyse</b>.</div>')
"""What the result area says before the first result and after a new input."""


# ---------------------------------------------------------------- the analysis

# the share of one run's progress bar the library's analysis takes; the rest is drawing the frames and
# panels and, for a video, writing the annotated video (about a fifth of a video's time on a CPU)


def load_detector(config: AppConfig) -> "Detector":
    """The cached Detector (loaded once per process and config). Raises :class:`AppError`
    with the library's message when there are no usable weights or no such device."""
    from .models import NoWeightsError, WeightsError
    from .pipeline import Detector

    try:
        return Detector.load(config.weights, config.device)
    except NoWeightsError as exc:
        raise AppError(f"No trained weights: {exc}", "No trained weights") from None
    except (WeightsError, RuntimeError) as exc:
        raise AppError(f"The models could not be loaded: {exc}", "Weights problem") from None


def analyze(config: AppConfig, path: str | None, kind: str, frames: int | None, models: Sequence[str] | None,
            threshold: float, aggregation: str | None, progress: Progress, heatmaps: bool = True) -> "Report":
    """One request: check what the user gave, then :meth:`Detector.analyze`. ``kind`` is
    "image" or "video" (for the messages); ``models`` None means all, an empty list is
    refused; ``threshold`` is the slider's value (see :func:`library_threshold`). The
    library's progress is the run's (drawing follows as its own step). Raises :class:`AppError`
    for what the user must fix; bad media comes back as an ERROR Report."""
    from .pipeline import AnalysisOptions

    if not path:
        raise AppError(f"Please upload {'an image' if kind == 'image' else 'a video'} first.")
    if not 0.0 < float(threshold) < 1.0:
        raise AppError("The threshold must be between 0 and 1.")
    check_upload(config, path, kind)
    det = load_detector(config)
    if models is not None and not list(models):
        raise AppError("Select at least one model.")
    chosen = tuple(models) if models else None
    try:
        default = det.default_threshold(chosen)
    except ValueError:  # none of these models is loaded: the Report says so
        default = None
    opts = AnalysisOptions(frames=frames, heatmaps=heatmaps, threshold=library_threshold(threshold, default),
                           aggregation=aggregation or None, models=chosen)
    progress(0.0, "starting")
    return det.analyze(path, options=opts, progress=progress)


# ---------------------------------------------------------------- HTML

CSS = """
.verdict-badge {border-radius: 12px; padding: 14px 18px; color: #fff; margin-bottom: 6px}
/* the theme colours prose text itself: without this the badge text is dark on the verdict colour */
.verdict-badge, .verdict-badge * {color: #fff !important}
.verdict-badge .v {font-size: 2.1em; font-weight: 800; letter-spacing: .04em; line-height: 1.1}
.verdict-badge .p {font-size: 1.05em}
.verdict-badge .r {font-size: .95em; margin-top: 4px}
.trust {border-left: 4px solid #475569; background: #f1f5f9; color: #1e293b; padding: 6px 12px;
        margin: 6px 0; border-radius: 6px}
.prov {border-left: 4px solid #0f766e; background: #f0fdfa; color: #134e4a; padding: 6px 12px;
       margin: 6px 0; border-radius: 6px; font-size: .92em}
.warn-box {border: 2px solid #b91c1c; background: #fef2f2; color: #7f1d1d; border-radius: 10px;
           padding: 10px 14px; margin: 6px 0; font-weight: 600}
.face-cards {display: flex; flex-wrap: wrap; gap: 10px}
.face-card {border: 1px solid #cbd5e1; border-left: 8px solid var(--c); border-radius: 10px;
            padding: 8px 12px; min-width: 220px; flex: 1 1 220px; max-width: 420px}
.face-card .h {font-weight: 700; font-size: 1.05em}
.pill {display: inline-block; border-radius: 999px; padding: 1px 9px; color: #fff; font-size: .85em;
       font-weight: 700; background: var(--c)}
.small {font-size: .88em; opacity: .85}
.placeholder {border: 2px dashed #94a3b8; border-radius: 12px; padding: 18px; color: #334155}
/* Gradio's grid gives a lone item the whole width (a square as wide as the page, cropped by the
   gallery's height); auto-fill keeps empty tracks, so one image (the Image tab) stays a thumbnail. */
#frames-gallery .grid-container, #faces-gallery .grid-container {
  grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)) !important}
table.probs {border-collapse: collapse; margin-top: 4px; font-size: .92em}
table.probs td {padding: 1px 10px 1px 0}
"""
"""The page's CSS (the class names the builders below use)."""

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
- **Content credentials.** A C2PA manifest, if the file has one, read apart from the models: who
  signed it, the software that wrote it, whether it says an AI generator made the file, and
  whether the signature still matches the file. A valid one that says "AI generator" is that
  maker's own statement; an invalid one means the file or manifest changed after signing. Most
  files have none and they are easily stripped, so no credentials says nothing either way. The
  signer's name is what its certificate says: no trust list is checked here.
- **Threshold.** Lower it to catch more fakes at the price of more false alarms on real video
  (soft faces most).
- **Heavily compressed video.** Compression hides fakes: re-encoded at the heaviest
  FaceForensics++ setting, nearly half the fake faces come back REAL. The app reads how hard an
  H.264 video was compressed (its quantiser) and, past the level of a crf 35 re-encode, warns and
  never calls the file REAL: UNCERTAIN instead. It sees only the last encode: a video squeezed
  hard once and re-saved at high quality is not caught, and other codecs are not checked.
- **Limits.** The models only know the kinds of fakes they were trained on (see the model card);
  new generators, heavy compression, tiny or side-on faces, and filters can fool them. They saw
  StyleGAN faces in training, not diffusion-made ones: a face made whole by another generator may
  well be called REAL. A **soft** face
  (blurred, upscaled or smoothed) gets a warning: blur alone pushes these models towards FAKE.
  Use this as one signal among others, never as proof.
"""


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _colour(verdict: str) -> str:
    from .render import verdict_hex  # render (cv2, grad-cam) loads with the first result, not at import

    return verdict_hex(verdict)


def badge_html(report: "Report", trust: str | None = None) -> str:
    """The summary badge: verdict in its colour, probability, threshold and uncertain band,
    reason, one plain line of how often the models are wrong (``trust``, from the cards:
    :func:`deepfake_demo.cards.how_often_wrong`), the file's content credentials
    (:meth:`~deepfake_demo.provenance.Provenance.summary`), warnings (red box), per-model probabilities
    of the deciding face, size and time."""
    v = report.verdict
    parts = [f'<div class="verdict-badge" style="background:{_colour(v)}" id="verdict-badge">',
             f'<div class="v">{_esc(v.replace("_", " "))}</div>']
    if report.fake_probability is not None:
        lo, hi = report.uncertain_range
        parts.append(f'<div class="p">calibrated fake probability <b>{report.fake_probability:.2f}</b>'
                     f' &middot; threshold {report.threshold:.2f} (uncertain {lo:.2f}&ndash;{hi:.2f})</div>')
    parts.append(f'<div class="r">{_esc(report.reason)}</div></div>')
    if trust and report.fake_probability is not None:
        parts.append(f'<div class="trust" id="trust">{_esc(trust)}</div>')
    if report.provenance is not None:  # the file's own claim, apart from the models' verdict
        parts.append(f'<div class="prov" id="provenance">{_esc(report.provenance.summary())}</div>')
    if report.warnings:
        parts.append('<div class="warn-box">&#9888; ' + "<br>&#9888; ".join(_esc(w) for w in report.warnings)
                     + "</div>")
    if report.models:
        rows = "".join(f"<tr><td>{_esc(k)}</td><td><b>{p:.3f}</b></td></tr>" for k, p in report.models.items())
        parts.append(f'<div class="small">per-model fake probability (deciding face):</div>'
                     f'<table class="probs">{rows}</table>')
    if report.ok:
        span = f"{report.frames_analyzed} frame(s) analysed" if report.kind == "video" else "image"
        size = f"{report.width}&times;{report.height}" if report.width else ""
        parts.append(f'<div class="small">{span} &middot; {size} &middot; {report.seconds:.1f} s</div>')
    return "".join(parts)


def faces_html(report: "Report") -> str:
    """One card per face track: verdict pill, probability, where it was seen, members, reason."""
    if not report.faces:
        return f'<div class="small">{_esc("No face tracks." if report.ok else "")}</div>'
    cards = []
    for t in report.faces:
        first, last = t.observations[0].time_s, t.observations[-1].time_s
        where = (f"{len(t.observations)} frame(s), {first:.1f}&ndash;{last:.1f} s" if report.kind == "video"
                 else "in the image")
        models = ", ".join(f"{_esc(k)} {p:.2f}" for k, p in t.models.items())
        cards.append(
            f'<div class="face-card" style="--c:{_colour(t.verdict)}"><div class="h">Face {t.id} '
            f'<span class="pill">{_esc(t.verdict)}</span> {t.fake_probability:.2f}</div>'
            f'<div class="small">{where}</div><div class="small">{models}</div>'
            f'<div class="small">{_esc(t.reason)}</div></div>')
    return '<div class="face-cards">' + "".join(cards) + "</div>"


# ---------------------------------------------------------------- files and outputs

def request_dir(base: str | os.PathLike | None = None, max_age_s: float = OUTPUT_MAX_AGE_S) -> Path:
    """A fresh folder for one request's files under ``base`` (default
    ``$TMPDIR/deepfake_demo_app``; Gradio copies the files into its own cache). Folders
    there older than ``max_age_s`` are swept first, so a long-running Space does not fill its disk."""
    root = Path(base) if base is not None else Path(tempfile.gettempdir()) / "deepfake_demo_app"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass  # another worker removed it first
    return Path(tempfile.mkdtemp(dir=root))


@dataclass(frozen=True)
class Summary:
    """The answer, shown first: the verdict (the API's first output), the badge and face cards, and the
    JSON report's path (every figure of the run)."""

    verdict: str
    badge_html: str
    faces_html: str
    json_path: str


@dataclass(frozen=True)
class Drawings:
    """What follows the answer on the page: gallery items are (RGB uint8 image, caption); ``plot`` a
    matplotlib Figure (None without frames); ``video`` the annotated video's path (video inputs only)."""

    frames: list
    faces: list
    plot: Any
    video: str | None


@dataclass(frozen=True)
class Outputs:
    """A :class:`Summary` and its :class:`Drawings` together (the library-side cost of the whole page)."""

    summary: Summary
    drawings: Drawings

    def __getattr__(self, name: str) -> Any:  # out.verdict, out.frames, ...
        for part in (self.summary, self.drawings):
            if name in part.__dataclass_fields__:
                return getattr(part, name)
        raise AttributeError(name)


def summary(report: "Report", out_dir: str | os.PathLike, trust: str | None = None) -> Summary:
    """The answer for one Report: badge, face cards and the JSON report written into ``out_dir``.
    Nothing here draws: it is what the page shows before any heatmap is painted."""
    from . import render

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{render.file_stem(report)}_report.json"
    json_path.write_text(report.to_json(indent=2))
    return Summary(report.verdict, badge_html(report, trust), faces_html(report), str(json_path))


def drawings(report: "Report", opacity: float, want_video: bool, progress: Progress,
             out_dir: str | os.PathLike) -> Drawings:
    """Draw one Report (into ``out_dir``): annotated frames, face panels, the plot, and the annotated
    video when ``want_video`` and the input is a video. ``progress`` runs from 0 to 1 through named stages."""
    from . import render

    frames_gallery: list = []
    faces_gallery: list = []
    video = plot = None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if report.ok and report.frames:
        draw_end = 0.5 if want_video and report.kind == "video" else 1.0
        by_frame = render.observations_by_frame(report)
        show_all = report.kind != "video" or not report.faces  # NO FACE: show what was looked at
        drawn = []
        for i, f in enumerate(report.frames):
            progress(draw_end * i / len(report.frames), f"drawing heatmaps on frame {i + 1}/{len(report.frames)}")
            img = render.annotated_frames(report, opacity, frame_indices=[f.index])[0]
            drawn.append(img)
            n = len(by_frame.get(f.index, []))
            if n or show_all:
                when = f"t={f.time_s:.2f}s frame {f.index}: " if report.kind == "video" else ""
                frames_gallery.append((img, f"{when}{n} face(s)"))
        for t in report.faces:
            for o in t.observations:
                if o.crop is not None:
                    when = f", t={o.time_s:.2f}s" if report.kind == "video" else ""
                    faces_gallery.append((render.face_panel_grid(o, opacity),
                                          f"face {t.id}{when}: {o.fake_probability:.2f}"))
        plot = render.probability_figure(report)
        if want_video and report.kind == "video":
            def step(i: int, n: int) -> None:
                progress(draw_end + (1.0 - draw_end) * i / n, f"writing annotated video {i}/{n}")

            video = str(render.write_annotated_video(report, out / f"{render.file_stem(report)}_annotated.mp4",
                                                     opacity, frames=drawn, progress=step))
    return Drawings(frames_gallery, faces_gallery, plot, video)


def outputs(report: "Report", opacity: float, want_video: bool, progress: Progress,
            out_dir: str | os.PathLike | None = None, trust: str | None = None) -> Outputs:
    """:func:`summary` and :func:`drawings` of one Report into ``out_dir`` (default a fresh
    :func:`request_dir`)."""
    out = Path(out_dir) if out_dir is not None else request_dir()
    return Outputs(summary(report, out, trust), drawings(report, opacity, want_video, progress, out))


class PendingDrawings:
    """Reports whose answer has been shown and whose drawings have not been made yet, by key: the page's
    second step takes its report from here. Bounded (at most ``max_items``, each at most ``max_age_s``
    old), because an API caller gets its answer and never asks for the drawings: their frames must not
    pile up in memory."""

    def __init__(self, max_items: int = 4, max_age_s: float = 300.0):
        import threading
        from collections import OrderedDict

        self.max_items, self.max_age_s = max_items, max_age_s
        self._items: "OrderedDict[str, tuple[float, Any, Path]]" = OrderedDict()
        self._lock = threading.Lock()

    def put(self, report: "Report", out_dir: str | os.PathLike) -> str:
        import uuid

        key = uuid.uuid4().hex
        with self._lock:
            self._items[key] = (time.monotonic(), report, Path(out_dir))
            self._prune()
        return key

    def take(self, key: str | None) -> tuple["Report", Path] | None:
        """The report and its folder (removed from here), or None where it expired or was never put."""
        with self._lock:
            self._prune()
            item = self._items.pop(key, None) if key else None
        return None if item is None else (item[1], item[2])

    def __len__(self) -> int:
        return len(self._items)

    def _prune(self) -> None:
        now = time.monotonic()
        for k in [k for k, (t, _, _) in self._items.items() if now - t > self.max_age_s]:
            del self._items[k]
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
