"""The result of one analysis, as frozen dataclasses.

``Report.to_dict()`` is the JSON contract of the CLI and the API; image arrays
(frames, crops, CAMs) ride along for rendering but never enter the JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .aggregate import Verdict, band_edges, face_size_px, median_detail
from .media import Frame
from .provenance import Provenance

__all__ = ["FaceObservation", "FaceTrack", "Report", "error_report"]


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


@dataclass(frozen=True)
class FaceObservation:
    """One face in one analysed frame.

    ``box`` is the detector's (x1, y1, x2, y2) in frame pixels; ``crop_box`` the
    square region that ``crop`` and ``cam`` cover (may extend past the frame).
    ``cam`` is the ensemble Grad-CAM, (S, S) float32 in [0, 1], aligned with
    ``crop`` (S, S, 3) RGB uint8; ``model_cams`` the members' maps, same shape.
    ``detail`` is :func:`~deepfake_demo.faces.face_detail` of the face (low = soft:
    blurred or upscaled). ``verdict`` is what this frame alone would be called
    (:func:`~deepfake_demo.aggregate.decide_frame`): the colour its box is drawn in.
    """

    frame_index: int
    time_s: float
    box: tuple[float, float, float, float]
    detection_prob: float
    fake_probability: float
    models: Mapping[str, float]
    verdict: str
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)
    cam: np.ndarray | None = field(default=None, repr=False, compare=False)
    model_cams: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    detail: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_index": self.frame_index,
            "time_s": _r(self.time_s, 3),
            "box": [round(float(v), 1) for v in self.box],
            "detection_prob": _r(self.detection_prob),
            "detail": _r(self.detail, 2),
            "fake_probability": _r(self.fake_probability),
            "verdict": self.verdict,
            "models": {k: _r(v) for k, v in self.models.items()},
        }


@dataclass(frozen=True)
class FaceTrack:
    """One person across the analysed frames."""

    id: int
    fake_probability: float
    verdict: str
    reason: str
    models: Mapping[str, float]
    observations: tuple[FaceObservation, ...]

    @property
    def detail(self) -> float | None:
        """The median :attr:`FaceObservation.detail` of the face (None when none was measured)."""
        return median_detail(o.detail for o in self.observations)

    @property
    def size_px(self) -> float:
        """The face's median shorter box side in frame pixels (:func:`~deepfake_demo.aggregate.face_size_px`)."""
        return face_size_px(o.box for o in self.observations)

    def is_soft(self, limit: float) -> bool:
        """Whether the face is softer than ``limit`` (``DecisionSettings.soft_face_detail``)."""
        return self.detail is not None and self.detail < limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "verdict": self.verdict,
            "reason": self.reason,
            "fake_probability": _r(self.fake_probability),
            "models": {k: _r(v) for k, v in self.models.items()},
            "frames": [o.to_dict() for o in self.observations],
        }


@dataclass(frozen=True)
class Report:
    """Everything one analysis found. ``verdict`` is one of :class:`Verdict`."""

    path: str | None
    kind: str | None
    verdict: str
    reason: str
    fake_probability: float | None = None
    models: Mapping[str, float] = field(default_factory=dict)
    faces: tuple[FaceTrack, ...] = ()
    frames_analyzed: int = 0
    seconds: float = 0.0
    error: str | None = None
    threshold: float = 0.5
    uncertain_band: float = 0.15
    aggregation: str = "confident"
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    video_qp: float | None = None  # the video's H.264 quantiser (media.video_qp); None: an image or not H.264
    timings_s: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # the file's content credentials (C2PA), evidence beside the verdict; None: not looked at (an array, an ERROR)
    provenance: Provenance | None = None
    frames: tuple[Frame, ...] = field(default=(), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the input was analysed (any verdict but ERROR)."""
        return self.verdict != Verdict.ERROR

    @property
    def uncertain_range(self) -> tuple[float, float]:
        """(low, high) edges of the UNCERTAIN band around :attr:`threshold`."""
        return band_edges(self.threshold, self.uncertain_band)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (plain types only)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "verdict": self.verdict,
            "reason": self.reason,
            "fake_probability": _r(self.fake_probability),
            "threshold": self.threshold,
            "uncertain_band": self.uncertain_band,
            "aggregation": self.aggregation,
            "models": {k: _r(v) for k, v in self.models.items()},
            "faces": [t.to_dict() for t in self.faces],
            "frames_analyzed": self.frames_analyzed,
            "width": self.width,
            "height": self.height,
            "fps": _r(self.fps, 3),
            "duration_s": _r(self.duration_s, 3),
            "video_qp": _r(self.video_qp, 2),
            "seconds": _r(self.seconds, 3),
            "timings_s": {k: _r(v, 3) for k, v in self.timings_s.items()},
            "warnings": list(self.warnings),
            "provenance": None if self.provenance is None else self.provenance.to_dict(),
            "error": self.error,
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """A few human lines: verdict, probability, reason, one line per face, then the content credentials."""
        name = self.path or "<array>"
        if self.verdict == Verdict.ERROR:
            return f"{name}: ERROR - {self.error}"
        head = f"{name}: {self.verdict}"
        if self.fake_probability is not None:
            head += f"  (fake probability {self.fake_probability:.2f})"
        lines = [head, f"  {self.reason}"]
        if self.models:
            lines.append("  models: " + ", ".join(f"{k} {v:.2f}" for k, v in self.models.items()))
        for t in self.faces:
            first, last = t.observations[0].time_s, t.observations[-1].time_s
            span = f"{first:.1f}-{last:.1f} s" if self.kind == "video" else "image"
            lines.append(
                f"  face {t.id}: {t.verdict} {t.fake_probability:.2f} over {len(t.observations)} frame(s), {span}"
            )
        lines.append(f"  {self.frames_analyzed} frame(s) analysed in {self.seconds:.1f} s")
        if self.provenance is not None:
            lines.append(f"  {self.provenance.summary()}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def error_report(path: str | None, message: str, kind: str | None = None, seconds: float = 0.0) -> Report:
    """A Report for an input that could not be analysed."""
    return Report(path=path, kind=kind, verdict=Verdict.ERROR, reason=message, error=message, seconds=seconds)
