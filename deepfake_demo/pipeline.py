"""The one orchestrator: media -> faces -> tracks -> ensemble scores + CAMs ->
verdict -> Report. Nothing here draws or prints; the UI and CLI read the Report."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from . import aggregate as agg
from .config import DECISION, DETECTOR, LIMITS, WEIGHTS_ENV, DecisionSettings, DetectorSettings, Limits
from .explain import combine_cams, warp_cam
from .faces import (DETAIL_MARGIN, DETAIL_SIZE, FaceBox, crop_face, detect_frames, face_detail, link_tracks,
                    load_face_detector, square_box)
from .media import Media, MediaError, kind_of, load_media
from .models import Ensemble, load_ensemble, resolve_device
from .provenance import read_provenance
from .report import FaceObservation, FaceTrack, Report, error_report

__all__ = ["Detector", "AnalysisOptions", "Progress", "CAM_SIZE"]

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
"""progress(fraction 0..1, description); ``gr.Progress()`` fits this signature."""

CAM_SIZE = 224
"""Side of the stored display crop and of every CAM in a Report."""

_LOCK = threading.Lock()
_CACHE: dict[tuple, "Detector"] = {}


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse one input; None means the default.

    ``frames``: frames sampled from a video (default ``DecisionSettings.default_frames``);
    ``heatmaps``: compute Grad-CAM maps and display crops; ``threshold`` (0..1, default
    the cards', :meth:`Detector.default_threshold`) and ``uncertain_band`` (half-width,
    default ``DecisionSettings.uncertain_band``) on the calibrated fake probability;
    ``aggregation``: a name in :data:`~deepfake_demo.aggregate.STRATEGIES`; ``models``:
    the members to use (default all loaded). Bad values give an ERROR report, not an
    exception.
    """

    frames: int | None = None
    heatmaps: bool = True
    threshold: float | None = None
    uncertain_band: float | None = None
    aggregation: str | None = None
    models: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.models is not None:  # a list from a caller (or one name) still hashes and compares as a tuple
            names = (self.models,) if isinstance(self.models, str) else tuple(self.models)
            object.__setattr__(self, "models", names)

    def with_(self, **changes: Any) -> "AnalysisOptions":
        """A copy with the given fields replaced, leaving out those given as None."""
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self


class Detector:
    """Face detector + model ensemble, loaded once, reused for every input.

    >>> det = Detector.load()                      # weights/ or $DEEPFAKE_DEMO_WEIGHTS
    >>> report = det.analyze("clip.mp4", frames=32)
    >>> report.verdict, report.fake_probability
    """

    def __init__(self, ensemble: Ensemble, face_detector: Any, device: str = "cpu",
                 decision: DecisionSettings = DECISION, detection: DetectorSettings = DETECTOR,
                 limits: Limits = LIMITS):
        self.ensemble = ensemble
        self.face_detector = face_detector
        self.device = device
        self.decision = decision
        self.detection = detection
        self.limits = limits

    @classmethod
    def load(cls, weights: str | os.PathLike | None = None, device: str | None = "cpu",
             models: Sequence[str] | None = None) -> "Detector":
        """Load (once per process and argument set) the MTCNN detector and the
        ensemble from ``weights`` (directory or Hub repo id; see
        :func:`deepfake_demo.models.resolve_weights_dir`). Raises
        ``NoWeightsError`` / ``WeightsError`` with a message for the user."""
        dev = resolve_device(device)
        key = (str(weights or os.environ.get(WEIGHTS_ENV) or ""), dev, tuple(models or ()))
        with _LOCK:
            if key not in _CACHE:
                ensemble = load_ensemble(weights, dev, models)
                _CACHE[key] = cls(ensemble, load_face_detector(dev), dev)
            return _CACHE[key]

    @property
    def model_names(self) -> list[str]:
        return self.ensemble.names

    def _members(self, models: Sequence[str] | None) -> list[str]:
        """The loaded members among ``models`` (all of them for None or empty), in load order."""
        return [n for n in self.ensemble.names if not models or n in models]

    def default_threshold(self, models: Sequence[str] | None = None) -> float:
        """The threshold used when none is given, for these members (all by default): the
        ensemble card's for exactly its members, else the members' own combined like their
        probabilities (:func:`~deepfake_demo.models.card_threshold`). Raises ValueError when
        none of ``models`` is loaded."""
        names = self._members(models)
        if not names:
            raise ValueError(f"none of the selected models are loaded (loaded: {', '.join(self.ensemble.names)})")
        return float(self.ensemble.threshold(names))

    def analyze(
        self,
        source: str | os.PathLike | np.ndarray,
        frames: int | None = None,
        heatmaps: bool | None = None,
        progress: Progress | None = None,
        threshold: float | None = None,
        uncertain_band: float | None = None,
        aggregation: str | None = None,
        models: Sequence[str] | None = None,
        *,
        options: AnalysisOptions | None = None,
    ) -> Report:
        """Analyse an image or video path, or an RGB uint8 (H, W, 3) array.

        The settings come from ``options`` (:class:`AnalysisOptions`), each keyword
        given (not None) replacing its field. Never raises for bad input:
        unreadable media or a bad setting gives an ERROR report with the reason, a
        file without faces a NO_FACE report.
        """
        opts = (options or AnalysisOptions()).with_(frames=frames, heatmaps=heatmaps, threshold=threshold,
                                                    uncertain_band=uncertain_band, aggregation=aggregation,
                                                    models=models)
        return self._analyze(source, None, opts, progress)

    def analyze_many(
        self,
        sources: Iterable[str | os.PathLike | np.ndarray],
        frames: int | None = None,
        progress_for: Callable[[Any], Progress | None] | None = None,
        decode_ahead: bool | None = None,
        *,
        options: AnalysisOptions | None = None,
        **kwargs: Any,
    ) -> Iterator[Report]:
        """Analyse ``sources`` in order, yielding one Report each, as :meth:`analyze` would.

        With ``decode_ahead`` the next input is decoded in a background thread
        while this one is detected and scored (OpenCV's decoder and PIL release
        the GIL), so one more input's frames are held than the caller keeps
        (each yielded Report holds its own frames until dropped). The default
        (None) does so only on CUDA, where the models leave the CPU free: on a
        2-core CPU the two stages fight over the same cores and a batch takes
        longer, not less (measured with ``python -m deepfake_demo.bench --batch``:
        notes/performance.md, "Change 4"). ``progress_for(source)``, if given, returns that input's
        progress callback; ``options`` and ``kwargs`` (its fields) are :meth:`analyze`'s.
        """
        items = list(sources)
        opts = (options or AnalysisOptions()).with_(frames=frames, **kwargs)
        n = self.decision.default_frames if opts.frames is None else int(opts.frames)
        ahead_on = self.device.startswith("cuda") if decode_ahead is None else bool(decode_ahead)
        pool = ThreadPoolExecutor(1, thread_name_prefix="decode-ahead") if ahead_on and items else None

        def decode(k: int) -> "Future | None":  # None: _analyze decodes it itself
            return pool.submit(load_media, items[k], n, self.limits) if pool and k < len(items) else None

        try:
            ahead = decode(0)
            for k, src in enumerate(items):
                current, ahead = ahead, decode(k + 1)
                progress = progress_for(src) if progress_for else None
                yield self._analyze(src, current, opts, progress)
        finally:  # stopped early (Ctrl-C, closed): do not wait for a decode nobody will read
            if pool:
                pool.shutdown(wait=False, cancel_futures=True)

    def _analyze(self, source, decoded: "Future | None", opts: AnalysisOptions,
                 progress: Progress | None = None) -> Report:
        t0 = time.perf_counter()
        path = None if isinstance(source, np.ndarray) else str(source)
        guess = "image" if path is None else kind_of(path, sniff=False)
        strategy = opts.aggregation or self.decision.aggregation
        if strategy not in agg.STRATEGIES:
            return error_report(path, f"unknown aggregation {strategy!r}; choose from {', '.join(agg.STRATEGIES)}",
                                kind=guess)
        names = self._members(opts.models)
        if not names:
            return error_report(path, f"none of the selected models are loaded (loaded: "
                                      f"{', '.join(self.ensemble.names)})", kind=guess)
        thr = self.default_threshold(names) if opts.threshold is None else float(opts.threshold)
        if not 0.0 < thr < 1.0:
            return error_report(path, f"threshold must be between 0 and 1, got {thr}", kind=guess)
        band = self.decision.uncertain_band if opts.uncertain_band is None else float(opts.uncertain_band)
        rule = replace(self.decision, threshold=thr, uncertain_band=agg.effective_band(thr, band),
                       aggregation=strategy)
        plan = _Plan(self.decision.default_frames if opts.frames is None else int(opts.frames), opts.heatmaps,
                     tuple(names), rule)
        run = _Run(self, path, plan, progress or (lambda f, d: None), t0)
        try:
            with _cudnn_off_on_gpu(self.device):
                return run.execute(source, decoded)
        except MediaError as exc:
            return error_report(path, str(exc), kind=run.kind or guess, seconds=time.perf_counter() - t0)
        except Exception as exc:  # a bug must cost one input, not the batch or the app; the log keeps the traceback
            log.exception("analysis of %s failed", path or "an array")
            return error_report(path, f"internal error while analysing ({exc.__class__.__name__}: {exc})",
                                kind=run.kind or guess, seconds=time.perf_counter() - t0)


_CUDNN_LOCK = threading.Lock()
_CUDNN_USERS = 0  # analyses on CUDA running now (the app runs image and video analyses at once)
_CUDNN_SAVED = True


@contextmanager
def _cudnn_off_on_gpu(device: str):
    """On CUDA, run an analysis with cuDNN off (only ``torch.backends.cudnn.enabled``
    is touched: the first analysis to start saves it, the last to finish restores it).
    cuDNN picks and caches kernels per input shape, and every upload brings new
    ones (its frame size, MTCNN's candidate counts, the number of face crops): on a
    GPU a first analysis of new media is much faster without cuDNN, and a repeat of
    media already seen, with every shape cached, a little slower (notes/performance.md,
    "Change 6: cuDNN off for analyses on a GPU"). Users upload new media, so the
    first case is the one that counts."""
    global _CUDNN_USERS, _CUDNN_SAVED
    if not str(device).startswith("cuda"):
        yield
        return
    import torch

    with _CUDNN_LOCK:
        if _CUDNN_USERS == 0:
            _CUDNN_SAVED = torch.backends.cudnn.enabled
            torch.backends.cudnn.enabled = False
        _CUDNN_USERS += 1
    try:
        yield
    finally:
        with _CUDNN_LOCK:
            _CUDNN_USERS -= 1
            if _CUDNN_USERS == 0:
                torch.backends.cudnn.enabled = _CUDNN_SAVED


@dataclass(frozen=True)
class _Plan:
    """:class:`AnalysisOptions` resolved against the Detector: every default filled in."""

    n_frames: int
    heatmaps: bool
    names: tuple[str, ...]  # the members used, in load order
    rule: DecisionSettings  # threshold, (effective) band and aggregation of this analysis


class _Run:
    """State of one analysis; one method per stage, timings recorded."""

    def __init__(self, det: Detector, path: str | None, plan: _Plan, progress: Progress, t0: float):
        self.det, self.path, self.plan, self.t0 = det, path, plan, t0
        self.progress = progress
        self.kind: str | None = None
        self.timings: dict[str, float] = {}

    def _timed(self, stage: str, t: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - t
        return now

    def execute(self, source, decoded: "Future | None" = None) -> Report:
        t = time.perf_counter()
        self.progress(0.0, "decoding")
        if decoded is not None:  # decoded ahead (analyze_many): "decode" is the time left waiting for it
            media = decoded.result()
        else:
            media = load_media(source, self.plan.n_frames, self.det.limits,
                               lambda i, n: self.progress(0.15 * i / n, f"decoding frame {i}/{n}"))
        self.kind = media.kind
        t = self._timed("decode", t)
        # read once per file, beside the models: a broken manifest is a finding, never an error of the analysis
        provenance = read_provenance(self.path) if self.path is not None else None
        t = self._timed("provenance", t)

        per_frame = detect_frames(self.det.face_detector, [(f.index, f.image) for f in media.frames],
                                  self.det.detection,
                                  lambda k, n: self.progress(0.15 + 0.3 * k / n, f"finding faces {k + 1}/{n}"))
        tracks = link_tracks(per_frame, self.det.detection)
        t = self._timed("detect", t)

        rule = self.plan.rule
        common = dict(path=self.path, kind=media.kind, frames_analyzed=len(media.frames),
                      threshold=round(rule.threshold, 4), uncertain_band=round(rule.uncertain_band, 4),
                      aggregation=rule.aggregation, width=media.width, height=media.height, fps=media.fps,
                      duration_s=media.duration_s, video_qp=media.video_qp,
                      warnings=media.warnings + tuple(self.det.ensemble.warnings),
                      provenance=provenance, frames=media.frames)
        faces = self._score(media, tracks) if tracks else []
        t = time.perf_counter()
        decision = agg.decide_file(faces, rule, frames_with_face=sum(1 for found in per_frame if found),
                                   frames_analyzed=len(per_frame), video_qp=media.video_qp)
        self._timed("aggregate", t)
        self.timings["total"] = time.perf_counter() - self.t0
        if decision.decider is None:
            return Report(verdict=decision.verdict, reason=decision.reason, seconds=self.timings["total"],
                          timings_s=dict(self.timings), **common)
        decider = faces[decision.decider]
        common["warnings"] += decision.warnings
        self.progress(1.0, "done")
        return Report(verdict=decision.verdict, reason=decision.reason, fake_probability=decider.fake_probability,
                      models=dict(decider.models), faces=tuple(faces), seconds=self.timings["total"],
                      timings_s=dict(self.timings), **common)

    def _score(self, media: Media, tracks: list[list[FaceBox]]) -> list[FaceTrack]:
        frames = {f.index: f for f in media.frames}
        flat = [(ti, fb) for ti, tr in enumerate(tracks) for fb in tr]
        cards = {c.name: c for c in self.det.ensemble.cards}
        ref_margin = cards[self.plan.names[0]].spec.crop_margin
        member = {}
        details = None  # faces.face_detail of each face, on the training cache's framing
        for mi, name in enumerate(self.plan.names):
            spec = cards[name].spec
            t = time.perf_counter()
            crops = np.stack([crop_face(frames[fb.frame_index].image, fb.box, spec.crop_margin, spec.input_size,
                                        spec.interpolation) for _, fb in flat])
            if details is None and (spec.crop_margin, spec.input_size, spec.interpolation) == (
                    DETAIL_MARGIN, DETAIL_SIZE, "bicubic"):
                details = [face_detail(c) for c in crops]
            t = self._timed("crop", t)
            self.progress(0.45 + 0.5 * mi / len(self.plan.names), f"scoring {len(flat)} face crop(s) with {name}")
            member[name] = self.det.ensemble.score_member(name, crops, with_cam=self.plan.heatmaps)
            self._timed(f"model:{name}", t)

        if details is None:  # no member crops at that framing
            t = time.perf_counter()
            details = [face_detail(crop_face(frames[fb.frame_index].image, fb.box, DETAIL_MARGIN, DETAIL_SIZE))
                       for _, fb in flat]
            self._timed("crop", t)
        t = time.perf_counter()
        rule = self.plan.rule
        ens = self.det.ensemble.combine({n: member[n].probs for n in self.plan.names})
        weight = self.det.ensemble.weights(self.plan.names)
        obs_by_track: list[list[FaceObservation]] = [[] for _ in tracks]
        for k, (ti, fb) in enumerate(flat):
            ref_box = square_box(fb.box, ref_margin)
            crop = cam = None
            model_cams: dict[str, np.ndarray] = {}
            if self.plan.heatmaps:
                crop = crop_face(frames[fb.frame_index].image, fb.box, ref_margin, CAM_SIZE)
                for n in self.plan.names:
                    src = square_box(fb.box, cards[n].spec.crop_margin)
                    model_cams[n] = warp_cam(member[n].cams[k], src, ref_box, CAM_SIZE)
                cam = combine_cams(model_cams.values(), [weight[n] * member[n].probs[k] for n in model_cams])
            fr = frames[fb.frame_index]
            probs = {n: float(member[n].probs[k]) for n in self.plan.names}
            obs_by_track[ti].append(FaceObservation(
                frame_index=fb.frame_index, time_s=fr.time_s, box=fb.box, detection_prob=fb.prob,
                fake_probability=float(ens[k]), models=probs, verdict=agg.decide_frame(float(ens[k]), probs, rule),
                crop_box=ref_box, crop=crop, cam=cam, model_cams=model_cams, detail=details[k]))
        self._timed("cam_render", t)

        t = time.perf_counter()
        out = []
        for ti, obs in enumerate(obs_by_track):
            call = agg.decide_track(obs, rule)
            out.append(FaceTrack(id=ti + 1, fake_probability=call.fake_probability, verdict=call.verdict,
                                 reason=call.reason, models=call.models, observations=tuple(obs)))
        self._timed("aggregate", t)
        return out
