"""Pack the crop cache small enough to move to a training machine, and unpack it there.

The cache (:mod:`deepfake_demo.training.data`) stores raw uint8 crops: about
900 MB for the training groups at 160 px. A GPU machine reached over a link
that carries tens of megabytes needs the same crops re-encoded: JPEG at a high
quality (the training augmentations recompress far harder, at 35-95), with the
landmarks, detection flags and source paths kept exactly. Unpacking decodes
them back into cache files of the same names, so ``load_group`` and the
training loop run unchanged on the other side.

    python -m deepfake_demo.training.pack --out runs/pack            # train groups + synthetic/, quality 95
    python -m deepfake_demo.training.pack --unpack runs/pack --cache-dir runs/cache

Packs hold crops of the shared research-only data: keep them out of the
repository (``runs/`` is git-ignored) and delete them when the run is over.
"""
from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .data import CACHE_DIR, FFHQ_GROUP, GAN_GROUPS, GROUPS, cache_path

__all__ = ["pack_group", "unpack_group", "main"]

# the training groups, and the synthetic/ groups that --ffhq-frac and --gan-frac train on in part
PACK_GROUPS = tuple(g for g in GROUPS if g.startswith("train_")) + (FFHQ_GROUP,) + GAN_GROUPS


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _decode(buf: np.ndarray) -> np.ndarray:
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("corrupt JPEG in pack")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def pack_group(cache_file: Path, out_file: Path, quality: int = 95, threads: int = 4) -> dict:
    """Re-encode one cache file's crops as JPEG (4:4:4) into ``out_file``."""
    with np.load(cache_file) as z:
        images, meta = z["images"], {k: z[k] for k in ("landmarks", "detected", "paths")}
    with ThreadPoolExecutor(threads) as ex:
        blobs = list(ex.map(lambda im: _encode(im, quality), images))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_suffix(".tmp.npz")
    np.savez(tmp, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets, size=np.int64(images.shape[1]),
             quality=np.int64(quality), **meta)
    os.replace(tmp, out_file)
    return {"n": int(len(images)), "raw_mb": images.nbytes / 1e6, "packed_mb": out_file.stat().st_size / 1e6}


def unpack_group(pack_file: Path, cache_file: Path, threads: int = 8) -> int:
    """Decode a packed group back into a cache file ``load_group`` reads."""
    with np.load(pack_file) as z:
        if "jpeg" not in z.files:
            raise ValueError(f"{pack_file} is not a pack (no 'jpeg' array)")
        data, off, size = z["jpeg"], z["offsets"], int(z["size"])
        meta = {k: z[k] for k in ("landmarks", "detected", "paths")}
    with ThreadPoolExecutor(threads) as ex:
        images = list(ex.map(lambda i: _decode(data[off[i]:off[i + 1]]), range(len(off) - 1)))
    arr = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    np.savez(tmp, images=arr, **meta)
    os.replace(tmp, cache_file)
    return len(arr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.training.pack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("groups", nargs="*", default=list(PACK_GROUPS), help="groups to pack (default: the train groups and synthetic/)")
    ap.add_argument("--out", type=Path, help="folder to write packs into")
    ap.add_argument("--unpack", type=Path, metavar="DIR", help="decode the packs in DIR into --cache-dir")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--margin", type=float, default=0.3)
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args(argv)
    if args.unpack:
        packs = sorted(p for p in args.unpack.glob("*.npz") if not p.name.endswith(".tmp.npz"))  # not half-written
        if not packs:
            ap.error(f"no packs (*.npz) in {args.unpack}")
        for p in packs:
            try:
                n = unpack_group(p, args.cache_dir / p.name, args.threads)
            except ValueError as exc:
                ap.error(str(exc))
            print(f"{p.name}: {n} crops", flush=True)
        return 0
    if not args.out:
        ap.error("give --out DIR (pack) or --unpack DIR")
    total = 0.0
    for g in args.groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g!r}; known: {', '.join(GROUPS)}")
        src = cache_path(g, args.size, args.margin, args.cache_dir)
        if not src.exists():
            ap.error(f"{src} missing; build the cache first: python -m deepfake_demo.training.data")
        info = pack_group(src, args.out / src.name, args.quality, args.threads)
        total += info["packed_mb"]
        print(json.dumps({"group": g, **{k: round(v, 1) if isinstance(v, float) else v for k, v in info.items()}}),
              flush=True)
    print(f"packed {total:.1f} MB into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
