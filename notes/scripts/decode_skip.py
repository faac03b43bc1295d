"""How much of a video's decode could be skipped: every frame through OpenCV's grab() (what
media.load_video does) against PyAV decoding with FFmpeg's ``skip_frame`` (NONREF: only frames
other frames depend on; NONKEY: keyframes only). A lead for issue 19's decode stage, not used by the
library (notes/performance.md, "What is left"). PyAV is not a dependency: ``pip install av`` first.

  .venv/bin/python notes/scripts/decode_skip.py ../shared/data/videos/real/dfdc_lynaeydofd.mp4
"""
from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import cv2

    try:
        import av
    except ImportError:
        ap.exit(2, "PyAV is not installed: pip install av\n")
    cv2.setNumThreads(args.threads)
    rows: dict[str, dict] = {}

    def opencv_grab() -> int:
        cap = cv2.VideoCapture(args.video, cv2.CAP_FFMPEG)
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    def pyav(skip: str | None):
        def run() -> int:
            with av.open(args.video) as c:
                s = c.streams.video[0]
                s.thread_type = "AUTO"
                s.codec_context.thread_count = args.threads
                if skip:
                    s.codec_context.skip_frame = skip
                return sum(1 for _ in c.decode(s))
        return run

    for name, fn in (("opencv_grab_all", opencv_grab), ("pyav_all", pyav(None)),
                     ("pyav_skip_nonref", pyav("NONREF")), ("pyav_skip_nonkey", pyav("NONKEY"))):
        times, n = [], 0
        for _ in range(args.runs):
            t = time.perf_counter()
            n = fn()
            times.append(time.perf_counter() - t)
        rows[name] = {"frames_decoded": n, "seconds_min": round(min(times), 3), "seconds_median": round(sorted(times)[len(times) // 2], 3)}
        print(name, json.dumps(rows[name]), flush=True)
    print(json.dumps({"video": args.video, "threads": args.threads, **rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
