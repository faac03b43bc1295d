"""Which detections are faces: every face track on the 13 shared videos, with the figures the
plausibility rules in ``DetectorSettings`` were chosen on (issue 17, item 1; 2026-12-02).

Per video (32 sampled frames, as the app does) and per detection path (``chain``: the CPU's keyframe
chain, ``full``: a full pass on every frame, as the GPU path does), the library's own detection and
tracking run twice:

- ``raw``: with the plausibility rules switched off (``faces.RULES_OFF``) and every track kept
  (``min_track_frames=1``): each track's frames seen, share of the sampled frames, median shorter box
  side (px), detector confidences, and the landmark geometry of its detections
  (``faces.landmark_geometry``), with whether each detection passes ``faces.plausible_face`` and whether
  the track passes the persistence rule (``faces.persistent``);
- ``shipped``: with ``config.DETECTOR`` as shipped: the tracks the app gets.

Then the same single-image check on shared face crops (a sample of faces/test, UTKFace, FFHQ):
how many still yield a face under the shipped settings, and the figures of those that do not.

Writes notes/logs/face_plausibility.json.  Run (about 10 min on a busy 2-core CPU):

  .venv/bin/python notes/scripts/face_plausibility.py [--frames 32] [--images 150] [--crops /tmp/DIR] [--cache /tmp/DIR]
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from deepfake_demo.config import DETECTOR  # noqa: E402
from deepfake_demo.faces import (RULES_OFF, FaceBox, crop_face, detect_faces, detect_frames, landmark_geometry,  # noqa: E402
                                 link_tracks, load_face_detector, persistent, plausible_face)
from deepfake_demo.media import load_image, load_video  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MODES = {"chain": {}, "full": {"keyframe_every": 1}}


def _r(x: float, n: int = 3) -> float:
    return round(float(x), n)


def _track_row(track: list[FaceBox], n_frames: int) -> dict:
    geo = [landmark_geometry(f.box, f.landmarks) for f in track]
    ok = [plausible_face(f.box, f.prob, f.landmarks, DETECTOR) for f in track]
    row = {
        "frames_seen": len(track),
        "share": _r(len(track) / n_frames),
        "first_last_frame": [track[0].frame_index, track[-1].frame_index],
        "median_size_px": _r(np.median([f.size for f in track]), 1),
        "size_range_px": [_r(min(f.size for f in track), 1), _r(max(f.size for f in track), 1)],
        "median_centre_xy": [_r(np.median([(f.box[0] + f.box[2]) / 2 for f in track]), 0),
                             _r(np.median([(f.box[1] + f.box[3]) / 2 for f in track]), 0)],
        "probs": [_r(f.prob, 4) for f in track],
        "geometry_min": {k: _r(min(g[k] for g in geo)) for k in geo[0]},
        "geometry_median": {k: _r(np.median([g[k] for g in geo])) for k in geo[0]},
        "geometry_max": {k: _r(max(g[k] for g in geo)) for k in geo[0]},
        "detections_plausible": int(sum(ok)),
        "persistent": persistent(len(track), n_frames, DETECTOR),
    }
    return row


def _save_crops(crops_dir: Path, stem: str, mode: str, tracks: list[list[FaceBox]], frames) -> None:
    """One crop (the track's middle detection, 1.0 margin) per track, to look at who each track is."""
    import cv2

    images = dict(frames)
    crops_dir.mkdir(parents=True, exist_ok=True)
    for k, tr in enumerate(tracks):
        f = tr[len(tr) // 2]
        crop = crop_face(images[f.frame_index], f.box, 1.0, 128)
        cv2.imwrite(str(crops_dir / f"{stem}_{mode}_track{k}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


def videos(n_frames: int, mtcnn, modes: list[str], exact: bool, pattern: str, crops_dir: Path | None = None,
           cache_dir: Path | None = None) -> dict:
    out = {}
    for path in sorted((DATA / "videos").glob(f"*/{pattern}.mp4")):
        t = time.perf_counter()
        keys = {m: cache_dir / f"{path.stem}_{n_frames}_{m}.pkl" if cache_dir else None for m in modes}
        cached = all(k is not None and k.exists() for k in keys.values())
        frames: list = []
        if not cached or crops_dir is not None or exact:  # decoding is slow on a busy CPU: only when needed
            frames = [(f.index, f.image) for f in load_video(path, n_frames).frames]
        rec = {"label": path.parent.name}
        for mode in modes:
            over = MODES[mode]
            raw_set = replace(DETECTOR, **RULES_OFF, **over)
            key = keys[mode]
            if key is not None and key.exists():
                raw_faces = pickle.loads(key.read_bytes())
            else:
                raw_faces = detect_frames(mtcnn, frames, raw_set)
                if key is not None:
                    key.parent.mkdir(parents=True, exist_ok=True)
                    key.write_bytes(pickle.dumps(raw_faces))
            raw = link_tracks(raw_faces, replace(raw_set, min_track_frames=1))
            if crops_dir is not None:
                _save_crops(crops_dir, path.stem, mode, raw, frames)
            if replace(DETECTOR, **over) == raw_set:  # the rules are off as shipped
                kept = raw_faces
            elif over.get("keyframe_every") == 1 or not exact:
                # every frame a full pass: no frame depends on another, so the shipped detections are
                # exactly the raw ones that pass plausible_face. On the keyframe chain this is close but
                # not exact (an implausible face no longer seeds the next frame's search regions).
                kept = [[f for f in faces if plausible_face(f.box, f.prob, f.landmarks, DETECTOR)]
                        for faces in raw_faces]
            else:  # --exact: run the keyframe chain as shipped
                kept = detect_frames(mtcnn, frames, replace(DETECTOR, **over))
            shipped = link_tracks(kept, replace(DETECTOR, **over))
            rec["frames"] = len(raw_faces)
            rec[mode] = {
                "raw": [_track_row(tr, len(raw_faces)) for tr in raw],
                "shipped": [{"frames_seen": len(tr), "median_size_px": _r(np.median([f.size for f in tr]), 1),
                             "median_prob": _r(np.median([f.prob for f in tr]), 4)} for tr in shipped],
            }
        rec["seconds"] = _r(time.perf_counter() - t, 1)
        print(f"{path.name}: " + "; ".join(
            f"{m} raw tracks {[t['frames_seen'] for t in rec[m]['raw']]} shipped "
            f"{[t['frames_seen'] for t in rec[m]['shipped']]}" for m in modes) + f" ({rec['seconds']} s)", flush=True)
        out[f"{path.parent.name}/{path.name}"] = rec
    return out


def images(n_per_group: int, mtcnn) -> dict:
    groups = {
        "faces/test/real/ffpp": DATA / "faces" / "test" / "real" / "ffpp",
        **{f"faces/test/fake/{m}": DATA / "faces" / "test" / "fake" / m
           for m in ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")},
        "faces/train/real/utkface": DATA / "faces" / "train" / "real" / "utkface",
        "synthetic/real/ffhq": DATA / "synthetic" / "real" / "ffhq",
    }
    out = {}
    rng = np.random.default_rng(0)
    for name, folder in groups.items():
        files = sorted(folder.glob("*"))
        pick = [files[i] for i in sorted(rng.choice(len(files), min(n_per_group, len(files)), replace=False))]
        raw_set = replace(DETECTOR, **RULES_OFF)
        n_raw = n_kept = 0
        lost = []
        for p in pick:
            image = load_image(p).frames[0].image
            raw = detect_faces(mtcnn, image, 0, raw_set)
            kept = [f for f in raw if plausible_face(f.box, f.prob, f.landmarks, DETECTOR)]
            n_raw += bool(raw)
            n_kept += bool(kept)
            if raw and not kept:
                f = raw[0]
                lost.append({"file": p.name, "size_px": _r(f.size, 1), "prob": _r(f.prob, 4),
                             "geometry": {k: _r(v) for k, v in landmark_geometry(f.box, f.landmarks).items()}})
        out[name] = {"images": len(pick), "with_face_rules_off": n_raw, "with_face_shipped": n_kept, "lost": lost}
        print(f"{name}: {len(pick)} images, a face in {n_raw} with the rules off, {n_kept} shipped", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--images", type=int, default=40, help="images sampled per crop folder")
    ap.add_argument("--crops", help="also write one crop per raw track here (outside the repository: "
                    "the shared data may not be copied into it)")
    ap.add_argument("--modes", default="chain,full", help="detection paths: chain (CPU), full (as on a GPU)")
    ap.add_argument("--videos", default="*", help="glob of video names")
    ap.add_argument("--exact", action="store_true", help="run the keyframe chain again as shipped instead of "
                    "filtering its rules-off detections (exact, one more pass per video)")
    ap.add_argument("--cache", help="keep the rules-off detections here and reuse them on the next run "
                    "(they do not depend on the rules)")
    ap.add_argument("--out", default=str(ROOT / "notes" / "logs" / "face_plausibility.json"))
    args = ap.parse_args()
    mtcnn = load_face_detector("cpu")
    log = {"detector_settings": asdict(DETECTOR), "rules_off": RULES_OFF, "frames": args.frames,
           "modes": args.modes.split(","), "exact_chain": args.exact,
           "videos": videos(args.frames, mtcnn, args.modes.split(","), args.exact, args.videos, Path(args.crops) if args.crops else None,
                            Path(args.cache) if args.cache else None), "images": images(args.images, mtcnn) if args.images else {}}
    Path(args.out).write_text(json.dumps(log, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
