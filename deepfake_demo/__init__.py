"""Deepfake detection you can see inside: faces -> timm ensemble -> calibrated
verdict with a Grad-CAM map for every face in every analysed frame.

Nothing heavy is imported here: torch, timm and MTCNN load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Detector", "AnalysisOptions", "Report", "FaceTrack", "FaceObservation", "Verdict", "analyze",
           "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import AnalysisOptions, Detector
    from .report import FaceObservation, FaceTrack, Report
    from .aggregate import Verdict


def __getattr__(name: str):
    if name in ("Detector", "AnalysisOptions"):
        from . import pipeline
        return getattr(pipeline, name)
    if name in ("Report", "FaceTrack", "FaceObservation"):
        from . import report
        return getattr(report, name)
    if name == "Verdict":
        from .aggregate import Verdict
        return Verdict
    raise AttributeError(name)


def analyze(source, weights=None, device: str = "cpu", **kwargs):
    """One-call API: ``Detector.load(weights, device).analyze(source, **kwargs)``."""
    from .pipeline import Detector

    return Detector.load(weights, device).analyze(source, **kwargs)
