"""Where an analysis runs changes its speed: the main thread, a new thread per analysis, or one long-lived
worker thread (as a Gradio worker runs it). Prints decode, detect and total per run for one video.

    .venv/bin/python notes/scripts/thread_timing.py ../shared/data/videos/real/dfdc_lynaeydofd.mp4
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python notes/scripts/thread_timing.py VIDEO     # OpenMP threads sleep
    .venv/bin/python notes/scripts/thread_timing.py VIDEO --only-worker              # nothing on the main thread

The figures are in notes/performance.md ("Where the app's slower analysis comes from").
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: runs without PYTHONPATH


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video")
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--only-worker", action="store_true",
                    help="load, warm up and analyse on one worker thread; the main thread runs no torch")
    args = ap.parse_args()
    from deepfake_demo.pipeline import Detector

    def once(det, where: str) -> None:
        t = det.analyze(args.video, frames=args.frames, heatmaps=True).timings_s
        print(f"{where:28s} decode {t['decode']:.2f} s, detect {t['detect']:.2f} s, total {t['total']:.2f} s", flush=True)

    jobs: queue.Queue = queue.Queue()

    def worker(det=None) -> None:
        if det is None:
            det = Detector.load(args.weights, "cpu")
            det.analyze(args.video, frames=args.frames)
        while jobs.get() is not None:
            once(det, "one worker thread" + (", only" if args.only_worker else ""))

    if args.only_worker:
        th = threading.Thread(target=worker)
    else:
        det = Detector.load(args.weights, "cpu")
        det.analyze(args.video, frames=args.frames)  # warm-up
        for _ in range(args.runs):
            once(det, "main thread")
        for _ in range(args.runs):
            t = threading.Thread(target=once, args=(det, "a new thread per analysis"))
            t.start()
            t.join()
        th = threading.Thread(target=worker, args=(det,))
    th.start()
    for _ in range(args.runs):
        jobs.put(1)
    jobs.put(None)
    th.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
