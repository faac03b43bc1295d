"""Pure functions from probabilities to verdicts: crop -> track -> file.

Per crop, the ensemble probability is the sigmoid of the mean of the members'
temperature-scaled logits (each member calibrated on its own validation set).
Per track, a named strategy reduces the per-frame probabilities; per file, the
most suspicious track decides (:func:`worst_track`), because one swapped face
makes a video fake.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Verdict",
    "ensemble_probability",
    "confident_mean",
    "plain_mean",
    "STRATEGIES",
    "track_probability",
    "effective_band",
    "worst_track",
    "decide_file",
    "decide",
]


class Verdict:
    """The five answers. Plain strings so they serialise as themselves."""

    FAKE = "FAKE"
    REAL = "REAL"
    UNCERTAIN = "UNCERTAIN"
    NO_FACE = "NO_FACE"
    ERROR = "ERROR"
    ALL = (FAKE, REAL, UNCERTAIN, NO_FACE, ERROR)


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


def decide_file(tracks: Sequence[tuple[str, float]], sizes: Sequence[float], min_size: float,
                ids: Sequence[int] | None = None) -> tuple[int, str, str]:
    """The file's verdict from its face tracks' (verdict, probability) pairs and
    face sizes: (index of the deciding track, file verdict, note for the reason).

    :func:`worst_track` among the faces of at least ``min_size``; smaller ones
    are named in the note. Weak evidence can raise doubt but not convict: if the
    deciding face is REAL and a small one is not, the file is UNCERTAIN."""
    di = worst_track(tracks, sizes, min_size)
    verdict = tracks[di][0]
    ids = list(ids) if ids is not None else list(range(1, len(tracks) + 1))
    small = [i for i in range(len(tracks)) if i != di and sizes[i] < min_size <= sizes[di]]
    if not small:
        return di, verdict, ""
    names = ", ".join(f"face {ids[i]} ({sizes[i]:.0f} px, {tracks[i][0]} {tracks[i][1]:.2f})" for i in small)
    note = f"; {names} {'is' if len(small) == 1 else 'are'} under {min_size:.0f} px, too small to decide the file"
    if verdict == Verdict.REAL and any(tracks[i][0] != Verdict.REAL for i in small):
        verdict = Verdict.UNCERTAIN
        note += ", and not clearly real: the file stays UNCERTAIN"
    return di, verdict, note


def decide(prob: float | None, threshold: float = 0.5, band: float = 0.15,
           member_probs: Mapping[str, float] | None = None, disagreement: float = 0.6) -> tuple[str, str]:
    """Verdict and a one-line reason for a fake probability.

    ``prob`` within ``band`` of ``threshold`` -> UNCERTAIN; so is a call the
    members disagree on by more than ``disagreement``.
    """
    if prob is None:
        return Verdict.NO_FACE, "no face was found, so nothing could be judged (this is not a REAL verdict)"
    band = effective_band(threshold, band)
    lo, hi = threshold - band, threshold + band
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
