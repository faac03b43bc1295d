"""Concurrency and soak: ``python -m deepfake_demo.stress soak [--users 8] [--minutes 10] [--weights DIR]``.

Starts ``app.py`` on loopback in a subprocess, then ``--users`` threads, each its own
``gradio_client.Client``, send a mix of requests until the time is up: real and blended images,
videos, files that are not media (must come back as an ERROR verdict with a reason), a video over
the app's duration limit (must be refused with "Video too long") and, when the queue is full, the
queue's own refusal. Every other answer, an exception or a request over ``--request-timeout-s`` is
a *failure*. The app's resident memory (VmRSS, with its child processes) is sampled every few
seconds; the figures compare it after the warm-up (the first fifth of the run) with the end.

Writes ``OUT/soak.json`` and prints a summary; exit status 1 when anything failed. The media are
the project's own ``examples/`` (public domain) and files made here, never the shared data.
"""
from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["soak", "rss_mb", "serve_app"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# (kind, share of requests)
MIX = (("image_real", 0.3), ("image_blended", 0.2), ("video", 0.2), ("not_media", 0.15),
       ("video_too_long", 0.1), ("truncated_video", 0.05))
MAX_VIDEO_S = 3.0  # the app's duration limit in the soak: the examples (2.4 s) pass, a 4 s clip does not


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB (Linux /proc)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024.0
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(weights: str | Path, out: Path, args: Sequence[str] = (), **env: str):
    """``app.py`` on a free loopback port with these weights (and extra command-line ``args`` and
    environment), its log in ``out/app.log``; yields (url, process) once the page answers, stops the
    app on exit. Raises RuntimeError (naming the log) if it exits or does not answer in 180 s."""
    out.mkdir(parents=True, exist_ok=True)
    for key in ("TMPDIR", "GRADIO_TEMP_DIR"):
        if key in env:
            Path(env[key]).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    full_env = dict(os.environ, DEEPFAKE_DEMO_WEIGHTS=str(weights), GRADIO_ANALYTICS_ENABLED="False",
                    PYTHONUNBUFFERED="1", **env)
    with open(out / "app.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args],
                                cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            up = time.time() + 180
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the app exited at start; see {out / 'app.log'}")
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if time.time() > up:
                        raise RuntimeError(f"the app did not come up in 180 s; see {out / 'app.log'}") from None
                    time.sleep(0.5)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _media(out: Path) -> dict[str, Path]:
    """The files each request kind sends."""
    import cv2
    import numpy as np

    files = {"image_real": EXAMPLES / "astronaut_real.jpg", "image_blended": EXAMPLES / "astronaut_blended_a.jpg",
             "video": EXAMPLES / "astronaut_blended_zoom.mp4"}
    bad = out / "not_media.jpg"
    bad.write_text("this is a text file with a .jpg name\n")
    files["not_media"] = bad
    long = out / "four_seconds.mp4"
    vw = cv2.VideoWriter(str(long), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (160, 120))
    for i in range(20):
        vw.write(np.full((120, 160, 3), 40 + 8 * i, np.uint8))
    vw.release()
    files["video_too_long"] = long
    data = (EXAMPLES / "astronaut_real_zoom.mp4").read_bytes()
    cut = out / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    files["truncated_video"] = cut
    return files


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: list[dict] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        with self.lock:
            self.rows.append(row)


def _expect(kind: str, verdict: str | None, error: str | None) -> str:
    """ok / refused (an intended refusal) / failed, for one answer."""
    if error is not None:
        if "queue is full" in error.lower():
            return "refused"
        if kind == "video_too_long" and "too long" in error.lower():
            return "refused"
        if kind in ("not_media", "truncated_video") and "could not preprocess input" in error.lower():
            return "refused"  # Gradio's own check of the upload refused it before the app saw it
        return "failed"
    if kind in ("not_media", "truncated_video"):
        return "ok" if verdict == "ERROR" else "failed"
    if kind == "video_too_long":
        return "failed"  # it must be refused, not analysed
    return "ok" if verdict in ("FAKE", "REAL", "UNCERTAIN", "NO_FACE") else "failed"


def _user(url: str, files: dict[str, Path], deadline: float, seed: int, tally: _Tally, timeout_s: float,
          frames: int, models: list[str]) -> None:
    from gradio_client import Client, handle_file

    rng = random.Random(seed)
    kinds, weights = zip(*MIX)
    client = Client(url, verbose=False)
    while time.time() < deadline:
        kind = rng.choices(kinds, weights)[0]
        path = handle_file(str(files[kind]))
        t0 = time.time()
        verdict = error = None
        try:
            if kind.startswith("image") or kind == "not_media":
                job = client.submit(path, models, 0.5, 0.5, "confident", api_name="/analyze_image")
            else:
                job = client.submit(path, frames, models, 0.5, 0.5, "confident", api_name="/analyze_video")
            res = job.result(timeout=timeout_s)
            verdict = res[0]["label"] if isinstance(res[0], dict) else str(res[0])
        except Exception as exc:  # noqa: BLE001 - every way a request can go wrong is a figure here
            error = f"{exc.__class__.__name__}: {exc}"
        outcome = _expect(kind, verdict, error)
        tally.add(kind=kind, outcome=outcome, seconds=round(time.time() - t0, 3), verdict=verdict,
                  error=(error or "")[:300] or None, t=round(t0, 1))


def soak(weights: str, users: int = 8, minutes: float = 10.0, out: Path | None = None, frames: int = 8,
         queue_size: int = 16, request_timeout_s: float = 300.0, sample_s: float = 5.0) -> dict:
    """Run the soak; returns (and writes to ``out/soak.json``) its figures."""
    out = Path(out or tempfile.mkdtemp(prefix="soak_"))
    out.mkdir(parents=True, exist_ok=True)
    from .present import AppConfig, read_weights

    files = _media(out)
    models = read_weights(AppConfig(weights=str(weights))).names
    tmp = out / "tmp"
    samples: list[tuple[float, float]] = []
    tally = _Tally()
    with serve_app(weights, out, DEEPFAKE_DEMO_QUEUE_SIZE=str(queue_size), DEEPFAKE_DEMO_MAX_VIDEO_S=str(MAX_VIDEO_S),
                   TMPDIR=str(tmp), GRADIO_TEMP_DIR=str(tmp / "gradio")) as (url, proc):
        start = time.time()
        deadline = start + minutes * 60.0
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                samples.append((round(time.time() - start, 1), round(rss_mb(proc.pid), 1)))
                stop.wait(sample_s)

        threading.Thread(target=sampler, daemon=True).start()
        threads = [threading.Thread(target=_user, args=(url, files, deadline, 1000 + i, tally, request_timeout_s,
                                                        frames, models), daemon=True) for i in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=minutes * 60.0 + request_timeout_s + 60)
        stop.set()
        samples.append((round(time.time() - start, 1), round(rss_mb(proc.pid), 1)))
        alive = proc.poll() is None
    return _summarize(tally.rows, samples, minutes, users, alive, out, tmp)


def _summarize(rows: list[dict], samples: list[tuple[float, float]], minutes: float, users: int, alive: bool,
               out: Path, tmp: Path) -> dict:
    by_kind: dict[str, dict] = {}
    for r in rows:
        k = by_kind.setdefault(r["kind"], {"ok": 0, "refused": 0, "failed": 0, "seconds": []})
        k[r["outcome"]] += 1
        k["seconds"].append(r["seconds"])
    for k in by_kind.values():
        s = sorted(k.pop("seconds"))
        k["p50_s"] = round(statistics.median(s), 2)
        k["p95_s"] = round(s[min(len(s) - 1, int(0.95 * len(s)))], 2)
        k["max_s"] = round(s[-1], 2)
    warm = minutes * 60.0 / 5
    after_warm = [m for t, m in samples if t >= warm] or [m for _, m in samples]
    leftover = sum(1 for p in tmp.rglob("*") if p.is_file()) if tmp.exists() else 0
    summary = {
        "command": "python -m deepfake_demo.stress " + " ".join(sys.argv[1:]),
        "users": users, "minutes": minutes, "requests": len(rows),
        "ok": sum(r["outcome"] == "ok" for r in rows), "refused": sum(r["outcome"] == "refused" for r in rows),
        "failed": sum(r["outcome"] == "failed" for r in rows), "app_alive_at_end": alive,
        "by_kind": by_kind,
        "rss_mb": {"first": samples[0][1] if samples else None, "after_warm_up": after_warm[0],
                   "end": samples[-1][1] if samples else None, "max": max(m for _, m in samples) if samples else None,
                   "growth_after_warm_up": round(samples[-1][1] - after_warm[0], 1) if samples else None},
        "rss_samples": samples,
        "files_left_in_tmp": leftover,
        "failures": [r for r in rows if r["outcome"] == "failed"][:20],
    }
    (out / "soak.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(s: dict, out: Path) -> None:
    rss = s["rss_mb"]
    print(f"{s['requests']} requests from {s['users']} users in {s['minutes']:g} min: {s['ok']} ok, "
          f"{s['refused']} refused as intended, {s['failed']} failed; app alive at the end: {s['app_alive_at_end']}")
    for kind, k in sorted(s["by_kind"].items()):
        print(f"  {kind:16s} ok {k['ok']:4d}  refused {k['refused']:4d}  failed {k['failed']:3d}  "
              f"p50 {k['p50_s']:.1f} s  p95 {k['p95_s']:.1f} s  max {k['max_s']:.1f} s")
    print(f"  app memory (RSS, MB): first {rss['first']}, after warm-up {rss['after_warm_up']}, end {rss['end']}, "
          f"max {rss['max']}; growth after warm-up {rss['growth_after_warm_up']} MB")
    print(f"  files left in the app's temp folders: {s['files_left_in_tmp']}")
    for f in s["failures"][:5]:
        print(f"  FAILED {f['kind']}: {f['error'] or f['verdict']}")
    print(f"full results: {out / 'soak.json'}")
