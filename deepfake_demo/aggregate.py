"""Pure functions from probabilities to verdicts, and every word of their reasons:
crop -> frame -> track -> file.

Per crop, the ensemble probability is the sigmoid of the mean of the members'
temperature-scaled logits (each member calibrated on its own validation set).
Per frame, :func:`decide_frame` gives the verdict a box is drawn with; per track,
a named strategy reduces the per-frame probabilities and :func:`decide_track`
decides; per file, :func:`decide_file` lets the most suspicious large face decide
(:func:`worst_track`), because one swapped face makes a video fake, and writes the
notes on small and soft faces. The UI and CLI only read what these return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

from .config import DECISION, DecisionSettings

if TYPE_CHECKING:  # pragma: no cover - report imports this module, so only for the type hints
    from .report import FaceObservation, FaceTrack

__all__ = [
    "Verdict",
    "ensemble_probability",
    "confident_mean",
    "plain_mean",
    "STRATEGIES",
    "track_probability",
    "effective_band",
    "band_edges",
    "face_size_px",
    "median_detail",
    "worst_track",
    "decide",
    "decide_frame",
    "TrackDecision",
    "decide_track",
    "FileDecision",
    "decide_file",
    "soft_face_warning",
    "heavy_compression_warning",
]


class Verdict:
    """The five answers. Plain strings so they serialise as themselves."""

    FAKE = "FAKE"
    REAL = "REAL"
    UNCERTAIN = "UNCERTAIN"
    NO_FACE = "NO_FACE"
    ERROR = "ERROR"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def ensemble_probability(member_probs: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                         weights: Sequence[float] | None = None, temperature: float = 1.0) -> np.ndarray:
    """Combine calibrated per-member probabilities, each (N,), into (N,).

    Averages in logit space: a member that is sure (0.99) moves the result more
    than one that is near 0.5. The mean of calibrated logits is not itself
    calibrated (members that disagree pull it towards 0.5), so the mean logit
    is divided by the ensemble's own ``temperature``, fitted on validation.
    """
    arrays = list(member_probs.values()) if isinstance(member_probs, Mapping) else list(member_probs)
    if not arrays:
        raise ValueError("no member probabilities to combine")
    z = np.stack([_logit(a) for a in arrays])
    w = np.ones(len(arrays)) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = np.tensordot(w / w.sum(), z, axes=1) / float(temperature)
    return (1.0 / (1.0 + np.exp(-mean))).astype(np.float64)


def confident_mean(probs: Sequence[float], high: float = 0.8, low: float = 0.2,
                   min_high_frac: float = 0.4, min_low_frac: float = 0.9) -> float:
    """The DFDC winner's "confident" rule, with its counts made proportional.

    If at least ``min_high_frac`` of the frames are confidently fake (> high),
    return the mean of those: a face swap often shows only in some frames (pose,
    blur, occlusion hide it in others) and a plain mean would dilute it. Else,
    if nearly all frames (``min_low_frac``) are confidently real, return the
    mean of those; otherwise the plain mean. It scored best among simple rules
    on the DFDC private set (log-loss 0.428) and needs no fitting.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no probabilities to aggregate")
    hi = p[p > high]
    if hi.size >= max(1, np.ceil(min_high_frac * p.size)):
        return float(hi.mean())
    lo = p[p < low]
    if lo.size >= max(1, np.ceil(min_low_frac * p.size)):
        return float(lo.mean())
    return float(p.mean())


def plain_mean(probs: Sequence[float]) -> float:
    """Mean over frames."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no probabilities to aggregate")
    return float(p.mean())


STRATEGIES: dict[str, Callable[[Sequence[float]], float]] = {
    "confident": confident_mean,
    "mean": plain_mean,
    "median": lambda p: float(np.median(np.asarray(p, dtype=np.float64))),
}


def track_probability(probs: Sequence[float], strategy: str = "confident") -> float:
    """One face's fake probability over its frames, by a named strategy."""
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown aggregation {strategy!r}; choose from {', '.join(STRATEGIES)}") from None
    return fn(probs)


def effective_band(threshold: float, band: float) -> float:
    """The uncertain band, narrowed near 0 or 1 so FAKE and REAL both stay
    reachable: at most half the distance from the threshold to either end."""
    return max(0.0, min(band, threshold / 2.0, (1.0 - threshold) / 2.0))


def band_edges(threshold: float, band: float) -> tuple[float, float]:
    """(low, high): probabilities at or below low are REAL, at or above high FAKE,
    in between UNCERTAIN (``band`` narrowed by :func:`effective_band`)."""
    b = effective_band(threshold, band)
    return threshold - b, threshold + b


def face_size_px(boxes: Iterable[Sequence[float]]) -> float:
    """A face's size over its frames: the median shorter side of its (x1, y1, x2, y2)
    boxes, in frame pixels (what ``DecisionSettings.decisive_face_px`` is compared with)."""
    sides = [min(b[2] - b[0], b[3] - b[1]) for b in boxes]
    if not sides:
        raise ValueError("no boxes to measure")
    return float(np.median(sides))


def median_detail(details: Iterable[float | None]) -> float | None:
    """The median :func:`~deepfake_demo.faces.face_detail` of a face's frames
    (None where none was measured)."""
    d = [x for x in details if x is not None]
    return float(np.median(d)) if d else None


def worst_track(tracks: Sequence[tuple[str, float]], sizes: Sequence[float] | None = None,
                min_size: float = 0.0) -> int:
    """Index of the track that decides a file, from (verdict, probability) pairs:
    the most severe verdict (FAKE > UNCERTAIN > REAL), then the highest
    probability. A clearly fake face is not hidden by a more suspicious but
    disputed one. With ``sizes`` (face size per track), only tracks of at least
    ``min_size`` compete, unless none is that large."""
    rank = {Verdict.FAKE: 2, Verdict.UNCERTAIN: 1, Verdict.REAL: 0}
    pool = list(range(len(tracks)))
    if sizes is not None:
        pool = [i for i in pool if sizes[i] >= min_size] or pool
    return max(pool, key=lambda i: (rank.get(tracks[i][0], -1), tracks[i][1]))


def decide(prob: float | None, threshold: float = 0.5, band: float = 0.15,
           member_probs: Mapping[str, float] | None = None, disagreement: float = 0.6) -> tuple[str, str]:
    """Verdict and a one-line reason for a fake probability.

    ``prob`` within ``band`` of ``threshold`` -> UNCERTAIN; so is a call the
    members disagree on by more than ``disagreement``.
    """
    if prob is None:
        return Verdict.NO_FACE, "no face was found, so nothing could be judged (this is not a REAL verdict)"
    lo, hi = band_edges(threshold, band)
    if member_probs and len(member_probs) > 1:
        vals = list(member_probs.values())
        if max(vals) - min(vals) > disagreement:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in member_probs.items())
            return Verdict.UNCERTAIN, f"the models disagree ({parts}); treat this as unresolved"
    # two decimals, or more where fewer would print the probability equal to an edge
    nd = next((d for d in (2, 3, 4) if all(f"{prob:.{d}f}" != f"{e:.{d}f}" for e in (lo, hi))), 4)
    p, lo_s, hi_s, t_s = (f"{v:.{nd}f}" for v in (prob, lo, hi, threshold))
    if prob >= hi:
        return Verdict.FAKE, f"fake probability {p} is above {hi_s} (threshold {t_s})"
    if prob <= lo:
        return Verdict.REAL, f"fake probability {p} is below {lo_s} (threshold {t_s})"
    return Verdict.UNCERTAIN, f"fake probability {p} is within the uncertain band {lo_s}-{hi_s}"


def decide_frame(prob: float, models: Mapping[str, float], rule: DecisionSettings = DECISION) -> str:
    """The verdict one analysed frame of a face would get on its own (the colour of
    its box): :func:`decide` on that frame's ensemble and member probabilities."""
    return decide(prob, rule.threshold, rule.uncertain_band, models, rule.disagreement)[0]


_SOFT_FAKE_NOTE = "; but the face is soft (blurred or upscaled), and blur alone pushes these models towards FAKE"


@dataclass(frozen=True)
class TrackDecision:
    """One face's call over its frames: probability (0..1), per-member probabilities,
    verdict (a :class:`Verdict`) and its one-line reason."""

    fake_probability: float
    models: Mapping[str, float]
    verdict: str
    reason: str


def decide_track(observations: Sequence["FaceObservation"], rule: DecisionSettings = DECISION) -> TrackDecision:
    """Decide one face from its observations (one per analysed frame): the ensemble's
    and each member's probabilities reduced over frames by ``rule.aggregation``,
    then :func:`decide`. A FAKE on a soft face (median detail below
    ``rule.soft_face_detail``) says so: blur alone pushes these models towards FAKE."""
    if not observations:
        raise ValueError("a face needs at least one observation")
    p = track_probability([o.fake_probability for o in observations], rule.aggregation)
    per_model = {n: track_probability([o.models[n] for o in observations], rule.aggregation)
                 for n in observations[0].models}
    verdict, reason = decide(p, rule.threshold, rule.uncertain_band, per_model, rule.disagreement)
    detail = median_detail(o.detail for o in observations)
    if verdict == Verdict.FAKE and detail is not None and detail < rule.soft_face_detail:
        reason += _SOFT_FAKE_NOTE
    return TrackDecision(p, per_model, verdict, reason)


@dataclass(frozen=True)
class FileDecision:
    """The file's call: verdict, reason, the index of the deciding track in the
    tracks given (None without faces) and warnings to add to the Report."""

    verdict: str
    reason: str
    decider: int | None = None
    warnings: tuple[str, ...] = ()


def soft_face_warning(ids: Sequence[int]) -> str:
    """The Report warning for soft faces (by track id)."""
    which = ", ".join(f"face {i}" for i in ids)
    return (f"{which} {'is' if len(ids) == 1 else 'are'} soft (blurred, upscaled or smoothed: less fine detail "
            f"than 98 % of the real FaceForensics++ faces the models trained on); on such faces these models "
            f"call many real faces FAKE, so a FAKE there is weak evidence")


def heavy_compression_warning(qp: float) -> str:
    """The Report warning for a heavily compressed video (``qp``: :func:`~deepfake_demo.media.video_qp`)."""
    return (f"the video is heavily compressed (H.264 quantiser {qp:.0f}; FaceForensics++'s c23 videos mostly read 20-25): "
            "compression erases the traces these models look for, and many known fakes re-encoded this hard "
            "were called REAL, so this file is not called REAL; a FAKE still counts")


def decide_file(tracks: Sequence["FaceTrack"], rule: DecisionSettings = DECISION, frames_with_face: int = 0,
                frames_analyzed: int = 0, video_qp: float | None = None) -> FileDecision:
    """The file's verdict from its decided face tracks (:class:`~deepfake_demo.report.FaceTrack`).

    :func:`worst_track` among the faces of at least ``rule.decisive_face_px``
    (:func:`face_size_px`); smaller ones are named in the reason. Weak evidence can
    raise doubt but not convict: if the deciding face is REAL and a small one is
    not, the file is UNCERTAIN. Soft faces get a warning, except small ones that do
    not decide (the reason already passes over them). A video whose H.264 quantiser
    ``video_qp`` is at least ``rule.heavy_compression_qp`` gets a warning, and a REAL
    there becomes UNCERTAIN: heavy compression hides fakes, it does not make reals look
    fake. Without tracks the file is NO_FACE; ``frames_with_face`` of ``frames_analyzed``
    frames that held a face no track kept are named, since more frames might link them."""
    if not tracks:
        verdict, reason = decide(None)
        if frames_with_face:
            reason = (f"a face was detected in only {frames_with_face} isolated frame(s) of {frames_analyzed}, "
                      "too few to judge; analyse more frames (this is not a REAL verdict)")
        return FileDecision(verdict, reason)
    calls = [(t.verdict, t.fake_probability) for t in tracks]
    sizes = [t.size_px for t in tracks]
    min_px = rule.decisive_face_px
    k = worst_track(calls, sizes, min_px)
    decider = tracks[k]
    verdict = decider.verdict
    reason = decider.reason if len(tracks) == 1 else f"face {decider.id} of {len(tracks)} decides: {decider.reason}"
    small = [i for i in range(len(tracks)) if i != k and sizes[i] < min_px <= sizes[k]]
    if small:
        names = ", ".join(f"face {tracks[i].id} ({sizes[i]:.0f} px, {calls[i][0]} {calls[i][1]:.2f})" for i in small)
        reason += f"; {names} {'is' if len(small) == 1 else 'are'} under {min_px:.0f} px, too small to decide the file"
        if verdict == Verdict.REAL and any(calls[i][0] != Verdict.REAL for i in small):
            verdict = Verdict.UNCERTAIN
            reason += ", and not clearly real: the file stays UNCERTAIN"
    # soft faces, except small ones that do not decide: they are soft by nature (upscaled background faces)
    soft = [t.id for i, t in enumerate(tracks)
            if (i == k or sizes[i] >= min_px) and t.is_soft(rule.soft_face_detail)]
    warnings = (soft_face_warning(soft),) if soft else ()
    if video_qp is not None and video_qp >= rule.heavy_compression_qp:
        warnings += (heavy_compression_warning(video_qp),)
        if verdict == Verdict.REAL:
            verdict = Verdict.UNCERTAIN
            reason += (f"; but the video is heavily compressed (H.264 quantiser {video_qp:.0f}), which hides fakes: "
                       "not enough to call it REAL")
    return FileDecision(verdict, reason, k, warnings)
