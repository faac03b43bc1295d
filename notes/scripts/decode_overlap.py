"""Can a video's decoding hide behind its face detection on 2 cores? On one clip, medians of --runs:
decode alone (media.load_video), the keyframe chain alone on 2 and on 1 torch threads, and the chain on
1 thread while the same clip decodes in another thread (an upper bound for a pipeline that detects each
frame as it is decoded: here detection waits for no frame).

  .venv/bin/python notes/scripts/decode_overlap.py ../shared/data/videos/real/dfdc_lynaeydofd.mp4

Run it on a quiet CPU (notes/performance.md, change 8).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: runs without PYTHONPATH


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import torch

    from deepfake_demo.faces import detect_frames, load_face_detector
    from deepfake_demo.media import load_video

    mt = load_face_detector()
    frames = [(f.index, f.image) for f in load_video(args.video, args.frames).frames]

    def detect(threads: int) -> None:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            detect_frames(mt, frames)

    def overlapped() -> None:
        th = threading.Thread(target=load_video, args=(args.video, args.frames))
        th.start()
        detect(1)
        th.join()

    cases = {"decode": lambda: load_video(args.video, args.frames), "detect_2_threads": lambda: detect(2),
             "detect_1_thread": lambda: detect(1), "decode_beside_detect_1_thread": overlapped}
    detect(2)  # warm
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    row = {k: round(statistics.median(v), 3) for k, v in times.items()}
    row["decode_then_detect_2_threads"] = round(row["decode"] + row["detect_2_threads"], 3)
    print(json.dumps({"video": Path(args.video).name, "frames": args.frames, "runs": args.runs, "median_s": row}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
