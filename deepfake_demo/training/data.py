"""Face-crop cache for training and evaluation.

Faces are re-detected (MTCNN, :func:`deepfake_demo.faces.detect_faces`) on the
shared crops and photos and cut with the ONE crop function
(:func:`deepfake_demo.faces.crop_face`) at the model spec's margin, so training
sees the framing inference produces. Crops are stored as uint8 arrays with the
5 landmarks in crop pixels, in ``runs/cache`` (never in the repository).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "DATA_ROOT",
    "CACHE_DIR",
    "cache_path",
    "GROUPS",
    "TEST_GROUPS",
    "SYNTHETIC_GROUPS",
    "CropSet",
    "list_group",
    "crop_group",
    "load_group",
    "canonical_landmarks",
    "split_train_val",
    "thumbnails",
    "nearest_similarity",
    "ffhq_split",
    "synthetic_split",
    "FFHQ_GROUP",
    "GAN_GROUPS",
    "DFDC_GROUPS",
    "DFDC_PARTS",
    "dfdc_split",
    "main",
]

DATA_ROOT = Path(os.environ.get("DEEPFAKE_DEMO_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
CACHE_DIR = Path(__file__).resolve().parents[2] / "runs" / "cache"

# group name -> (folder under DATA_ROOT, label 0 real / 1 fake)
GROUPS: dict[str, tuple[str, int]] = {
    "train_real_ffpp": ("faces/train/real/ffpp", 0),
    "train_real_utkface": ("faces/train/real/utkface", 0),
    "train_fake_Deepfakes": ("faces/train/fake/Deepfakes", 1),
    "train_fake_Face2Face": ("faces/train/fake/Face2Face", 1),
    "train_fake_FaceSwap": ("faces/train/fake/FaceSwap", 1),
    "train_fake_NeuralTextures": ("faces/train/fake/NeuralTextures", 1),
    "test_real_ffpp": ("faces/test/real/ffpp", 0),
    "test_fake_Deepfakes": ("faces/test/fake/Deepfakes", 1),
    "test_fake_Face2Face": ("faces/test/fake/Face2Face", 1),
    "test_fake_FaceSwap": ("faces/test/fake/FaceSwap", 1),
    "test_fake_NeuralTextures": ("faces/test/fake/NeuralTextures", 1),
    # whole generated faces vs FFHQ photos: an out-of-domain check, or half of each
    # trains (--ffhq-frac, --gan-frac) and evaluate scores the held-out quarter
    "synthetic_real_ffhq": ("synthetic/real/ffhq", 0),
    "synthetic_fake_stylegan": ("synthetic/fake/stylegan", 1),
    "synthetic_fake_stylegan2": ("synthetic/fake/stylegan2", 1),
    # DFDC: one face per video, 5000 originals and one face swap of each. Split by the original a fake
    # was made from (dfdc_split), never by file: a fake and its original share a person and a scene.
    "dfdc_real": ("dfdc_faces/real", 0),
    "dfdc_fake": ("dfdc_faces/fake", 1),
}
TEST_GROUPS = tuple(g for g in GROUPS if g.startswith("test_"))
SYNTHETIC_GROUPS = tuple(g for g in GROUPS if g.startswith("synthetic_"))
DFDC_GROUPS = ("dfdc_real", "dfdc_fake")

# Mean MTCNN landmarks of a 0.3-margin crop, as fractions of the crop side
# (measured on the FF++ train crops); used where no face is found.
_CANON = np.array([[0.355, 0.405], [0.645, 0.405], [0.5, 0.555], [0.38, 0.67], [0.62, 0.67]], np.float32)


def canonical_landmarks(size: int) -> np.ndarray:
    """Typical 5 landmarks (eyes, nose, mouth corners) of a face crop, (5, 2) pixels."""
    return _CANON * float(size)


@dataclass(frozen=True)
class CropSet:
    """Cached crops of one group: images (N, S, S, 3) uint8 RGB, landmarks
    (N, 5, 2) float32 crop pixels, detected (N,) bool, labels (N,) int, paths."""

    name: str
    images: np.ndarray
    landmarks: np.ndarray
    detected: np.ndarray
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.images)


def list_group(group: str, root: Path = DATA_ROOT) -> list[Path]:
    """Image files of one group, in a stable order."""
    folder = root / GROUPS[group][0]
    exts = (".jpg", ".jpeg", ".png")
    return sorted(p for p in folder.iterdir() if p.name.lower().endswith(exts))


def cache_path(group: str, size: int, margin: float, cache_dir: Path, limit: int | None = None) -> Path:
    tail = "" if limit is None else f"_first{limit}"
    return cache_dir / f"{group}_s{size}_m{margin:g}{tail}.npz"


def crop_group(paths: Sequence[Path], size: int, margin: float, detector=None,
               interpolation: str = "bicubic", progress: bool = True):
    """Re-detect the face in each image and crop it with :func:`crop_face`.

    Returns (images (N, S, S, 3) uint8, landmarks (N, 5, 2) float32 in crop
    pixels, detected (N,) bool). Where MTCNN finds no face, the whole image is
    the box and the landmarks are :func:`canonical_landmarks`.
    """
    from PIL import Image

    from ..faces import crop_face, detect_faces, load_face_detector, square_box

    from dataclasses import replace

    from ..config import DETECTOR

    # the shared images are face crops/chips: the face fills them, so the
    # pyramid need not search for small faces (it skips its largest, costliest scales; same detector)
    settings = replace(DETECTOR, mtcnn_min_face_size=max(DETECTOR.mtcnn_min_face_size, 60))
    det = detector if detector is not None else load_face_detector("cpu", settings)
    n = len(paths)
    images = np.zeros((n, size, size, 3), np.uint8)
    lms = np.zeros((n, 5, 2), np.float32)
    found = np.zeros(n, bool)
    it = range(n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="crop", mininterval=5)
    for i in it:
        img = np.asarray(Image.open(paths[i]).convert("RGB"))
        h, w = img.shape[:2]
        faces = detect_faces(det, img, settings=settings)
        if faces:
            # the crop's subject is the biggest face; small ones are background people
            face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            box = face.box
            sx1, sy1, sx2, _ = square_box(box, margin)
            scale = size / float(sx2 - sx1)
            lms[i] = (np.asarray(face.landmarks, np.float32) - [sx1, sy1]) * scale
            found[i] = True
        else:
            # whole image as the box: the shared crops are already face crops
            box = (0.0, 0.0, float(w), float(h))
            lms[i] = canonical_landmarks(size) * (1.0 / (1.0 + margin)) + size * margin / (2 * (1 + margin))
        images[i] = crop_face(img, box, margin, size, interpolation)
    return images, lms, found


def load_group(group: str, size: int = 160, margin: float = 0.3, cache_dir: Path = CACHE_DIR,
               root: Path = DATA_ROOT, build: bool = True, limit: int | None = None) -> CropSet:
    """The cached crops of ``group`` (only its first ``limit`` images if given);
    built (slow: MTCNN per image) if missing."""
    path = cache_path(group, size, margin, cache_dir, limit)
    if not path.exists():
        if not build:
            raise FileNotFoundError(f"{path} missing; run `python -m deepfake_demo.training.data`")
        files = list_group(group, root)[:limit]
        images, lms, found = crop_group(files, size, margin)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, landmarks=lms, detected=found,
                 paths=np.array([str(p.relative_to(root)) for p in files]))
        os.replace(tmp, path)
    z = np.load(path)
    label = GROUPS[group][1]
    return CropSet(group, z["images"], z["landmarks"], z["detected"],
                   np.full(len(z["images"]), label, np.int64), [str(p) for p in z["paths"]])


FFHQ_GROUP = "synthetic_real_ffhq"
GAN_GROUPS = ("synthetic_fake_stylegan", "synthetic_fake_stylegan2")
SYNTH_TRAIN_FRAC, SYNTH_VAL_FRAC = 0.5, 0.25  # of each synthetic/ group; the rest is never trained or selected on
# one fixed, different shuffle per synthetic/ group (77: the FFHQ split the shipped members used)
_SPLIT_SALT = {FFHQ_GROUP: 77, GAN_GROUPS[0]: 78, GAN_GROUPS[1]: 79}


def synthetic_split(group: str, n: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, held_out) of a synthetic/ group, for members trained
    on part of it (``--ffhq-frac``: FFHQ photos of real people; ``--gan-frac``:
    StyleGAN faces): half trains, a quarter joins validation, a quarter is held
    out. The held-out quarter is what ``evaluate --synthetic`` scores for such
    members, so that check stays on images no choice was made on."""
    rng = np.random.default_rng([seed, _SPLIT_SALT[group]])
    idx = rng.permutation(n)
    a, b = int(round(n * SYNTH_TRAIN_FRAC)), int(round(n * (SYNTH_TRAIN_FRAC + SYNTH_VAL_FRAC)))
    return np.sort(idx[:a]), np.sort(idx[a:b]), np.sort(idx[b:])


DFDC_PARTS = {"train": 0.7, "val": 0.15, "held_out": 0.15}  # of the 5000 originals, with their fakes


def dfdc_split(paths: Sequence[str], root: Path = DATA_ROOT, seed: int = 1234) -> dict[str, np.ndarray]:
    """Indices into ``paths`` (files of a dfdc_faces/ group) of each part of :data:`DFDC_PARTS`, split
    by ``source_group`` from ``dfdc_faces/groups.csv``: a fake always falls in its original's part, so no
    person and scene is seen in training and then scored in validation or the held-out part. The
    held-out part is never trained or selected on; ``evaluate`` scores it."""
    with open(root / "dfdc_faces" / "groups.csv", newline="") as f:
        source = {row["file"]: row["source_group"] for row in csv.DictReader(f)}
    originals = sorted(set(source.values()))
    rng = np.random.default_rng([seed, 80])
    order = rng.permutation(len(originals))
    n_train = int(round(len(originals) * DFDC_PARTS["train"]))
    n_val = int(round(len(originals) * DFDC_PARTS["val"]))
    part_of = {}
    for rank, i in enumerate(order):
        part_of[originals[i]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "held_out"
    names = [Path(p).name for p in paths]
    missing = [n for n in names if n not in source]
    if missing:
        raise ValueError(f"{len(missing)} DFDC files not in groups.csv (first: {missing[0]})")
    parts = np.array([part_of[source[n]] for n in names])
    return {k: np.flatnonzero(parts == k) for k in DFDC_PARTS}


def ffhq_split(n: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`synthetic_split` of the FFHQ photos of real people."""
    return synthetic_split(FFHQ_GROUP, n, seed)


def thumbnails(images: np.ndarray, side: int = 16) -> np.ndarray:
    """Each crop (N, S, S, 3) as a ``side`` x ``side`` RGB thumbnail (area-averaged), centred and scaled to
    unit length: two crops' dot product is their correlation (1 = the same picture). Frames of one video
    correlate above about 0.95; different FF++ videos mostly below 0.93 (notes/logs/real_fake_leak.json)."""
    import cv2

    t = np.stack([cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in images]).astype(np.float32)
    t = t.reshape(len(t), -1)
    t -= t.mean(1, keepdims=True)
    return t / (np.linalg.norm(t, axis=1, keepdims=True) + 1e-6)


def nearest_similarity(images: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N,): each of ``images``' highest thumbnail correlation with any of ``others``."""
    if len(images) == 0 or len(others) == 0:
        return np.full(len(images), -1.0, np.float32)
    return (thumbnails(images) @ thumbnails(others).T).max(1)


def split_train_val(n: int, val_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random index split (train, val). The shared FF++ crops (`roi_N.jpg`) carry
    no video id and UTKFace names no person, so the split cannot be by video or
    identity: frames of one video may fall on both sides (``--ffpp-drop-twins`` then keeps the FF++
    originals' twins of validation crops out of training)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(n)
    k = int(round(n * val_frac))
    return np.sort(idx[k:]), np.sort(idx[:k])


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m deepfake_demo.training.data [--size 160] [--margin 0.3] [groups...]`"""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description="Re-detect and crop the shared faces into runs/cache")
    ap.add_argument("groups", nargs="*", metavar="group",
                    help="any of: " + ", ".join(GROUPS) + " (default: all but the synthetic_ ones)")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    groups = args.groups or [g for g in GROUPS if g not in SYNTHETIC_GROUPS + DFDC_GROUPS]
    torch.set_num_threads(args.threads)
    stats = {}
    for g in groups:
        cs = load_group(g, args.size, args.margin)
        stats[g] = {"n": len(cs), "no_face": int((~cs.detected).sum())}
        print(g, stats[g], flush=True)
    stats_file = CACHE_DIR / f"stats_s{args.size}_m{args.margin:g}.json"
    if stats_file.exists():  # a run over some groups keeps the other groups' lines
        stats = json.loads(stats_file.read_text()) | stats
    stats_file.write_text(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
