"""Binary-classification metrics and calibration, pure numpy.

Labels are 1 = fake, 0 = real; scores are fake probabilities (or logits
where a function says so)."""
from __future__ import annotations

import numpy as np

__all__ = [
    "roc_auc",
    "roc_curve",
    "log_loss",
    "expected_calibration_error",
    "reliability_bins",
    "confusion",
    "summarize",
    "fit_temperature",
    "best_threshold",
    "sigmoid",
]


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half). NaN if one class is absent."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    # average ranks over ties
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds descending."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(y.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~y).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log)."""
    y = np.asarray(labels, np.float64)
    p = np.clip(np.asarray(probs, np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def reliability_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15):
    """Per equal-width bin of predicted fake probability: (mean prob, fake rate, count)."""
    y = np.asarray(labels, np.float64)
    p = np.asarray(probs, np.float64)
    idx = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    conf = np.bincount(idx, weights=p, minlength=n_bins) / np.maximum(count, 1)
    acc = np.bincount(idx, weights=y, minlength=n_bins) / np.maximum(count, 1)
    return conf, acc, count


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the fake probability: sum over bins of |fake rate - mean prob| x bin share."""
    conf, acc, count = reliability_bins(labels, probs, n_bins)
    return float(np.sum(np.abs(acc - conf) * count) / max(count.sum(), 1))


def confusion(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, int]:
    """Counts with fake as the positive class: tp, fp, tn, fn."""
    y = np.asarray(labels).astype(bool)
    pred = np.asarray(probs) >= threshold
    return {"tp": int((pred & y).sum()), "fp": int((pred & ~y).sum()),
            "tn": int((~pred & ~y).sum()), "fn": int((~pred & y).sum())}


def summarize(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy, balanced accuracy, log-loss, ECE and confusion counts at ``threshold``."""
    y = np.asarray(labels).astype(bool)
    c = confusion(y, probs, threshold)
    tpr = c["tp"] / max(c["tp"] + c["fn"], 1)
    tnr = c["tn"] / max(c["tn"] + c["fp"], 1)
    return {
        "n": int(len(y)),
        "auc": roc_auc(y, probs),
        "accuracy": (c["tp"] + c["tn"]) / max(len(y), 1),
        "balanced_accuracy": (tpr + tnr) / 2.0,
        "log_loss": log_loss(y, probs),
        "ece": expected_calibration_error(y, probs),
        "threshold": float(threshold),
        "confusion": c,
    }


def fit_temperature(labels: np.ndarray, logits: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """Temperature T > 0 minimising the log-loss of sigmoid(logit / T)
    (golden-section search on log T; the NLL is unimodal in it)."""
    y = np.asarray(labels, np.float64)
    z = np.asarray(logits, np.float64)

    def nll(log_t: float) -> float:
        return log_loss(y, sigmoid(z / np.exp(log_t)))

    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The probability threshold with the highest balanced accuracy (Youden's J)."""
    fpr, tpr, thr = roc_curve(labels, probs)
    j = tpr - fpr
    k = int(np.argmax(j[1:])) + 1  # skip the +inf threshold
    return float(thr[k])
