"""The video detector's settings, one at a time, on every shared video: for each value of one
DetectorSettings field, the faces found on the sampled frames, the tracks linked from them, how many
of the first value's faces are found again (IoU >= 0.5) and the detection time. Frames are decoded
once per video; the values run one after another on the same frames, so their times compare.

  .venv/bin/python notes/scripts/detect_settings.py roi_min_face_size 20 40 48
  .venv/bin/python notes/scripts/detect_settings.py keyframe_every 4 6 8 --out notes/logs/x.jsonl

Run it on a quiet CPU: the times are the point (notes/performance.md, change 8).
"""
from __future__ import annotations

import argparse
import json
import time
import sys
from dataclasses import fields, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: runs without PYTHONPATH


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("field", help="a DetectorSettings field with a number value")
    ap.add_argument("values", nargs="+", type=float)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="also write the rows here (JSON lines)")
    args = ap.parse_args()

    import torch

    from deepfake_demo.config import DETECTOR
    from deepfake_demo.faces import box_iou, detect_frames, link_tracks, load_face_detector
    from deepfake_demo.media import load_video

    kinds = {f.name: type(getattr(DETECTOR, f.name)) for f in fields(DETECTOR)}
    if kinds.get(args.field) not in (int, float):
        ap.error(f"{args.field!r} is not a number field of DetectorSettings")
    values = [kinds[args.field](v) for v in args.values]
    vids = sorted((args.data / "videos").glob("*/*.mp4"))
    if not vids:
        ap.exit(2, f"no videos under {args.data / 'videos'}\n")
    torch.set_num_threads(args.threads)
    mt = load_face_detector()
    rows, total = [], {v: 0.0 for v in values}
    with torch.inference_mode():
        for path in vids:
            frames = [(f.index, f.image) for f in load_video(path, args.frames).frames]
            found = {}
            for v in values:
                t = time.perf_counter()
                found[v] = detect_frames(mt, frames, replace(DETECTOR, **{args.field: v}))
                total[v] += time.perf_counter() - t
                found[v] = (found[v], time.perf_counter() - t)
            base = found[values[0]][0]
            row = {"video": path.name, "field": args.field}
            for v in values:
                faces, dt = found[v]
                ious = [max((box_iou(a.box, b.box) for b in fb), default=0.0) for fa, fb in zip(base, faces) for a in fa]
                row[str(v)] = {"faces": sum(map(len, faces)), "tracks": len(link_tracks(faces)),
                               "found_again": sum(i >= 0.5 for i in ious), "detect_s": round(dt, 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {"field": args.field, "videos": len(vids), "frames": args.frames, "threads": args.threads,
               "detect_s_total": {str(v): round(s, 2) for v, s in total.items()},
               "same_tracks": {str(v): sum(r[str(v)]["tracks"] == r[str(values[0])]["tracks"] for r in rows)
                               for v in values}}
    print(json.dumps(summary))
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows + [summary]), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
