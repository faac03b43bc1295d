"""What H.264 quantiser (``media.video_qp``) a video re-encoded at a given crf shows: the scale the app's
heavy-compression check reads (``DecisionSettings.heavy_compression_qp``).

Each of the 13 shared videos (``../shared/data/videos``) as it is, then its first ``--seconds`` re-encoded
with libx264 at each crf (ffmpeg's default preset, as a re-uploader would; imageio-ffmpeg's ffmpeg), audio
dropped. Prints per video and per crf the measured QP, and the seconds ``video_qp`` took on the stored file
(what the app pays per video); then per crf the median and range over the videos.
Only the codec is measured here: no model runs.

  .venv/bin/python notes/scripts/video_qp.py [--crf 23 30 35 40] [--out notes/logs/video_qp.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[2] / "tests")]

VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crf", type=int, nargs="+", default=[23, 30, 35, 40])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = ap.parse_args()
    import numpy as np

    from deepfake_demo.media import video_qp
    from mediatools import reencode_h264  # the tests' re-upload, so the test and this table agree
    videos = sorted(VIDEOS.glob("*/*.mp4"))
    if not videos:
        ap.error(f"no videos under {VIDEOS}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in videos:
            name = f"{v.parent.name}/{v.name}"
            t = time.perf_counter()
            rows[name] = {"as_is": round(video_qp(v), 2), "seconds_as_is": round(time.perf_counter() - t, 2)}
            for crf in args.crf:
                out = Path(tmp) / f"{v.stem}_crf{crf}.mp4"
                reencode_h264(v, out, crf, args.seconds)
                rows[name][f"crf {crf}"] = round(video_qp(out), 2)
            print(name, rows[name], flush=True)
    summary = {}
    for key in ["as_is"] + [f"crf {c}" for c in args.crf]:
        q = np.array([r[key] for r in rows.values()])
        summary[key] = {"median": round(float(np.median(q)), 2), "min": round(float(q.min()), 2),
                        "max": round(float(q.max()), 2)}
        print(f"{key:>7}: median QP {summary[key]['median']:.1f} (range {summary[key]['min']:.1f}-{summary[key]['max']:.1f})")
    took = [r["seconds_as_is"] for r in rows.values()]
    print(f"video_qp on the stored files: {min(took):.2f}-{max(took):.2f} s per video")
    result = {"seconds": args.seconds, "videos": rows, "summary": summary}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
