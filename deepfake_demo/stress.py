"""Reliability harness: ``python -m deepfake_demo.stress fuzz|large``.

``fuzz --n N [--seed S] [--start K] [--timeout-s T] [--out DIR] [--weights DIR]`` mutates
real media (the shared images and videos, the project's own ``examples/``),
writes each case to DIR and analyses it in a long-lived worker subprocess with
a per-file time limit: a worker that dies is a *crash*, one over the limit a
*hang* (it is killed and restarted), an exception escaping ``analyze`` or an
``internal error`` report a *crash* too, and a verdict on a file that no
independent decoder reads (or on a file that must be refused) *unexpected*.
Writes ``DIR/fuzz.json`` and prints a short summary; exit status 1 when
anything but ``ok`` was found. Cases are a pure function of (seed, index), so a
finding is reproduced by :func:`make_case` without keeping the file.

``soak [--users 8] [--minutes 10] [--weights DIR]``: the app under concurrent users (:mod:`.soak`).

``large [--minutes M] [--fps F] [--short-s S] [--out DIR]`` generates (never in the
repository) a long 4K video and a 20000x20000 image, analyses them and the
cases ``config.LIMITS`` must refuse, each in a fresh subprocess whose peak
memory (VmHWM) and leftover temp files are measured.

Weights default to tiny random ones made in a temp folder (the fuzz tests
decoding and the pipeline, not the verdict); ``--weights`` takes real ones.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

__all__ = [
    "Seed", "Case", "Outcome", "MUTATORS", "collect_seeds", "make_case", "run_cases", "summarize", "main",
    "tiny_weights", "png_bytes",
]

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DEEPFAKE_DEMO_DATA", ROOT.parent / "shared" / "data"))


@dataclass(frozen=True)
class Seed:
    """One real file to mutate: its bytes and extension (``.jpg``, ``.mp4``...)."""

    name: str
    ext: str
    data: bytes

    @property
    def kind(self) -> str:
        return "video" if self.ext in (".mp4", ".avi", ".mov", ".mkv", ".webm") else "image"


@dataclass(frozen=True)
class Case:
    """One mutated file: ``index`` and the run's seed make it again."""

    index: int
    seed_name: str
    mutator: str
    note: str
    ext: str
    data: bytes
    must_fail: bool = False  # no honest decoder can give a verdict on it (bomb, empty)

    @property
    def file_name(self) -> str:
        return f"{self.index:05d}_{self.mutator}{self.ext}"


@dataclass(frozen=True)
class Outcome:
    """What analysing one case gave. ``status``: ok | crash | hang | unexpected."""

    index: int
    file: str
    seed_name: str
    mutator: str
    note: str
    status: str
    verdict: str | None
    reason: str
    seconds: float
    peak_rss_mb: float | None = None


# ---------------------------------------------------------------------------------------------- seeds

def _reencode(img_bytes: bytes, fmt: str, **kw) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(img_bytes)) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, fmt, **kw)
    return buf.getvalue()


def collect_seeds(data: Path = DATA, max_images: int = 24) -> list[Seed]:
    """Real media to mutate: ``examples/`` (always), and from ``data`` a fixed
    handful of face crops, FFHQ photos and the smallest videos. The first
    example image is also re-encoded as PNG, WebP, BMP, TIFF and GIF, and one
    example clip rewritten as MJPG AVI, so every container gets mutated."""
    seeds: list[Seed] = []
    ex = ROOT / "examples"
    for p in sorted(ex.glob("*.jpg")) + sorted(ex.glob("*.mp4")):
        seeds.append(Seed(f"examples/{p.name}", p.suffix, p.read_bytes()))
    if data.is_dir():
        pools = [sorted((data / "faces" / "test" / "real" / "ffpp").glob("*.jpg")),
                 sorted((data / "faces" / "test" / "fake" / "FaceSwap").glob("*.jpg")),
                 sorted((data / "synthetic" / "real" / "ffhq").glob("*")),
                 sorted((data / "faces" / "train" / "real" / "utkface").glob("*.jpg"))]
        for pool in pools:
            step = max(1, len(pool) // max(1, max_images // len(pools)))
            for p in pool[::step][: max_images // len(pools)]:
                seeds.append(Seed(str(p.relative_to(data)), p.suffix.lower(), p.read_bytes()))
        # the two smallest shared clips (720p, ~10 s): decoding the rest costs seconds per case
        vids = sorted((data / "videos").glob("*/*.mp4"), key=lambda p: p.stat().st_size)[:2]
        seeds += [Seed(str(p.relative_to(data)), ".mp4", p.read_bytes()) for p in vids]
    base = next(s for s in seeds if s.ext == ".jpg")
    for fmt, ext in (("PNG", ".png"), ("WEBP", ".webp"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("GIF", ".gif")):
        seeds.append(Seed(f"{base.name}->{fmt}", ext, _reencode(base.data, fmt)))
    clip = next((s for s in seeds if s.ext == ".mp4"), None)
    if clip is not None:
        seeds.append(Seed(f"{clip.name}->MJPG", ".avi", _mjpg_avi(clip.data)))
    return seeds


def _mjpg_avi(mp4: bytes) -> bytes:
    import cv2

    with tempfile.TemporaryDirectory(prefix="stress_seed_") as d:
        src, dst = Path(d) / "in.mp4", Path(d) / "out.avi"
        src.write_bytes(mp4)
        cap = cv2.VideoCapture(str(src))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        vw = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
        for _ in range(20):
            ok, f = cap.read()
            if not ok:
                break
            vw.write(f)
        vw.release()
        cap.release()
        return dst.read_bytes()


# ---------------------------------------------------------------------------------------------- mutators

_EXTREMES = (0, 1, 2, 0x7FFF, 0xFFFF, 60000, 0x7FFFFFFF, 0xFFFFFFFF)
_EXTS = (".jpg", ".png", ".webp", ".bmp", ".tif", ".gif", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".bin", "")
Mutator = Callable[[Seed, random.Random, Sequence[Seed]], tuple[bytes, str, str]]


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, idat: bytes | None = None, color_type: int = 0, depth: int = 8) -> bytes:
    """A PNG whose header declares ``width`` x ``height``; ``idat`` defaults to
    one zlib-compressed row of zeros (a header that lies about its pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _bitflip(s, rng, _):
    b = bytearray(s.data)
    k = rng.choice((1, 2, 4, 8, 32, 128))
    for _ in range(k):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), s.ext, f"{k} bits flipped"


def _garble(s, rng, _):
    b = bytearray(s.data)
    n = rng.choice((4, 64, 1024))
    at = rng.randrange(max(1, min(len(b) - 1, 4096 if rng.random() < 0.5 else len(b) - 1)))  # often the header
    b[at:at + n] = rng.randbytes(min(n, len(b) - at))
    return bytes(b), s.ext, f"{n} bytes garbled at {at}"


def _truncate(s, rng, _):
    keep = rng.choice((1, 8, 64, 512, int(len(s.data) * rng.random())))
    return s.data[:max(1, keep)], s.ext, f"cut to {max(1, keep)} of {len(s.data)} bytes"


def _header_swap(s, rng, seeds):
    other = rng.choice([o for o in seeds if o.ext != s.ext] or list(seeds))
    n = rng.choice((8, 32, 512))
    return other.data[:n] + s.data[n:], s.ext, f"first {n} bytes from {other.name}"


def _wrong_ext(s, rng, _):
    ext = rng.choice([e for e in _EXTS if e != s.ext])
    return s.data, ext, f"{s.ext} named {ext or '(none)'}"


def _polyglot(s, rng, seeds):
    other = rng.choice(list(seeds))
    return s.data + other.data, s.ext, f"{other.name} appended"


def _patch_be32(data: bytes, offsets: list[int], rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    off = rng.choice(offsets)
    val = rng.choice(_EXTREMES)
    b[off:off + 4] = struct.pack(">I", val)
    return bytes(b), f"u32 at {off} = {val}"


def _mp4_fields(data: bytes, boxes: Sequence[bytes]) -> list[int]:
    """Offsets of the 32-bit words in the first 40 bytes of each named box."""
    offs = []
    for tag in boxes:
        i = data.find(tag)
        while i >= 0 and len(offs) < 400:
            offs += [i + 4 + 4 * k for k in range(10) if i + 8 + 4 * k <= len(data)]
            i = data.find(tag, i + 4)
    return offs


def _dims(s, rng, _):
    """Absurd width/height in the container's own header fields."""
    d = s.data
    if s.ext == ".png":
        w, h = rng.choice(_EXTREMES), rng.choice(_EXTREMES)
        ihdr = struct.pack(">II", w, h) + d[24:29]
        return d[:8] + _chunk(b"IHDR", ihdr) + d[33:], s.ext, f"IHDR {w}x{h}"
    if s.ext == ".jpg":
        i = next((d.find(m) for m in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1") if d.find(m) >= 0), -1)
        if i >= 0:
            h, w = rng.choice(_EXTREMES) & 0xFFFF, rng.choice(_EXTREMES) & 0xFFFF
            b = bytearray(d)
            b[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(b), s.ext, f"SOF {w}x{h}"
    if s.ext == ".bmp":
        w, h = rng.choice((0, -1, 60000, 2**31 - 1, -60000)), rng.choice((0, -1, 60000, 2**31 - 1, -60000))
        return d[:18] + struct.pack("<ii", w, h) + d[26:], s.ext, f"BMP {w}x{h}"
    if s.ext == ".gif":
        w, h = rng.choice(_EXTREMES) & 0xFFFF, rng.choice(_EXTREMES) & 0xFFFF
        return d[:6] + struct.pack("<HH", w, h) + d[10:], s.ext, f"GIF screen {w}x{h}"
    if s.ext in (".mp4", ".mov"):
        out, note = _patch_be32(d, _mp4_fields(d, (b"tkhd", b"avc1", b"mp4v", b"hvc1")) or [8], rng)
        return out, s.ext, "video dims: " + note
    if s.ext == ".avi":
        offs = [d.find(b"avih") + 8 + 32, d.find(b"avih") + 8 + 36, d.find(b"strf") + 12, d.find(b"strf") + 16]
        b = bytearray(d)
        off = rng.choice([o for o in offs if o > 20])
        v = rng.choice(_EXTREMES)
        b[off:off + 4] = struct.pack("<I", v)
        return bytes(b), s.ext, f"AVI dim u32 at {off} = {v}"
    return _bitflip(s, rng, _)


def _frames(s, rng, _):
    """Huge or zero frame counts and durations, zero timescales."""
    d = s.data
    if s.ext in (".mp4", ".mov"):
        out, note = _patch_be32(d, _mp4_fields(d, (b"mvhd", b"mdhd", b"stts", b"stsz", b"stsc", b"stco", b"elst"))
                                or [8], rng)
        return out, s.ext, "timing: " + note
    if s.ext == ".avi":
        i = d.find(b"avih") + 8
        off = rng.choice((i, i + 16, d.find(b"strh") + 8 + 20, d.find(b"strh") + 8 + 24, d.find(b"strh") + 8 + 32))
        v = rng.choice(_EXTREMES)
        b = bytearray(d)
        b[off:off + 4] = struct.pack("<I", v)
        return bytes(b), s.ext, f"AVI timing u32 at {off} = {v}"
    if s.ext == ".gif" or s.kind == "image":
        from PIL import Image

        n = rng.choice((300, 3000))
        with Image.open(io.BytesIO(s.data)) as im:
            small = im.convert("RGB").resize((64, 64)).quantize(64)  # palette once: quantizing each frame is slow
        buf = io.BytesIO()
        small.save(buf, "GIF", save_all=True, append_images=[small.rotate(k % 360) for k in range(1, n)],
                   duration=rng.choice((0, 1, 100)), loop=0, optimize=False)
        return buf.getvalue(), ".gif", f"animated GIF, {n} frames"
    return _bitflip(s, rng, _)


def _exif(s, rng, _):
    """EXIF orientation out of range, or an EXIF block of garbage."""
    from PIL import Image

    if rng.random() < 0.5:
        val = rng.choice((0, 5, 7, 9, 255, 65535))
        with Image.open(io.BytesIO(s.data)) as im:
            exif = Image.Exif()
            exif[274] = val
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", exif=exif.tobytes())
        return buf.getvalue(), ".jpg", f"EXIF orientation {val}"
    d = _reencode(s.data, "JPEG") if s.ext != ".jpg" else s.data
    body = b"Exif\x00\x00" + rng.choice((b"MM\x00\x2a", b"II\x2a\x00")) + rng.randbytes(rng.choice((4, 60, 2000)))
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    return d[:2] + app1 + d[2:], ".jpg", f"garbage EXIF block ({len(body)} bytes)"


def _bomb(s, rng, _):
    """Tiny files that declare enormous pixel counts (must be refused)."""
    kind = rng.choice(("png_header", "png_wide", "gif", "tiff", "png_zeros", "png_zeros_under"))
    if kind == "png_header":
        return png_bytes(60000, 60000), ".png", "PNG declaring 60000x60000, 1 row of data"
    if kind == "png_wide":
        return png_bytes(2**31 - 1, 40, color_type=2), ".png", "PNG declaring 2^31-1 x 40 RGB"
    if kind.startswith("png_zeros"):  # a real zlib bomb: every row present, ~50 MP of zeros in ~50 KB
        side = 7200 if kind == "png_zeros" else 7000  # just over / just under LIMITS.max_image_pixels
        idat = _zero_rows(side, side)
        return png_bytes(side, side, idat), ".png", f"zlib bomb {side}x{side} ({side * side / 1e6:.1f} MP, {len(idat)} B)"
    if kind == "gif":
        gif = (b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0) + b",\x00\x00\x00\x00"
               + struct.pack("<HH", 65535, 65535) + b"\x00\x02\x02\x44\x01\x00;")
        return gif, ".gif", "GIF declaring 65535x65535"
    # TIFF: one strip, 60000x60000 8-bit grey, 16 bytes of pixel data
    entries = [(256, 4, 1, 60000), (257, 4, 1, 60000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 8 + 4), (277, 3, 1, 1), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", t, typ, n) + (struct.pack("<HH", v, 0) if typ == 3 else struct.pack("<I", v))
        for t, typ, n, v in entries) + b"\x00\x00\x00\x00"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 16, ".tif", "TIFF declaring 60000x60000"


def _empty(s, rng, _):
    return rng.choice((b"", b"\x00", b" \n", b"\xff\xd8", b"\x89PNG\r\n\x1a\n")), s.ext, "empty or magic only"


MUTATORS: dict[str, Mutator] = {
    "bitflip": _bitflip, "garble": _garble, "truncate": _truncate, "header_swap": _header_swap,
    "wrong_ext": _wrong_ext, "polyglot": _polyglot, "dims": _dims, "frames": _frames, "exif": _exif,
    "bomb": _bomb, "empty": _empty,
}
_WEIGHT = {"bitflip": 4, "garble": 3, "truncate": 3, "header_swap": 2, "wrong_ext": 2, "polyglot": 1, "dims": 3,
           "frames": 2, "exif": 2, "bomb": 1, "empty": 1}
_MUST_FAIL = {"bomb", "empty"}


def make_case(seeds: Sequence[Seed], seed: int, index: int) -> Case:
    """Case ``index`` of run ``seed``: a pure function of both (and the seeds)."""
    rng = random.Random(f"{seed}:{index}")
    names = sorted(MUTATORS)
    mut = rng.choices(names, [_WEIGHT[n] for n in names])[0]
    # videos cost ~10x an image to analyse: one case in four
    pool = [s for s in seeds if s.kind == "video"] if rng.random() < 0.25 else [s for s in seeds if s.kind == "image"]
    if mut == "exif":
        pool = [s for s in seeds if s.kind == "image"]
    src = rng.choice(pool or list(seeds))
    data, ext, note = MUTATORS[mut](src, rng, seeds)
    return Case(index, src.name, mut, note, ext, data, must_fail=mut in _MUST_FAIL)


# ---------------------------------------------------------------------------------------------- worker

def _independently_decodes(path: str) -> bool:
    """Does a decoder other than ours read a frame of it? (cv2, which is more lenient than PIL)."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is not None and img.size:
        return True
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        ok, f = cap.read()
        return bool(ok and f is not None and f.size)
    finally:
        cap.release()


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux)
    except OSError:
        pass


def vm_hwm_mb() -> float | None:
    """This process's peak resident memory in MB (VmHWM), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _worker(weights: str, frames: int) -> int:
    """Line protocol on the original stdout: READY, then one JSON result per path read from stdin.
    Everything the library or its C decoders print goes to stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import traceback

    import torch

    torch.set_num_threads(1)
    from .pipeline import Detector

    det = Detector.load(weights, "cpu")
    proto.write("READY\n")
    for line in sys.stdin:
        path = line.rstrip("\n")
        _reset_peak()
        t = time.perf_counter()
        try:
            rep = det.analyze(path, frames=frames, heatmaps=True)
            res = {"verdict": str(rep.verdict),
                   "reason": rep.error or rep.reason or "", "escaped": False}
            if res["verdict"] not in ("ERROR", "NO_FACE"):
                res["decodes"] = _independently_decodes(path)
        except BaseException as exc:  # noqa: BLE001 - this is what the harness looks for
            res = {"verdict": None, "reason": "".join(traceback.format_exception(exc))[-2000:], "escaped": True}
        res["seconds"] = time.perf_counter() - t
        res["peak_rss_mb"] = vm_hwm_mb()
        proto.write(json.dumps(res) + "\n")
    return 0


class _Worker:
    """One ``stress _worker`` subprocess; restarted after a crash or hang."""

    def __init__(self, weights: str, frames: int, log: Path, tmp: Path):
        self.args = [sys.executable, "-m", "deepfake_demo.stress", "_worker", "--weights", weights,
                     "--frames", str(frames)]
        self.log, self.tmp = log, tmp
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONPATH": str(ROOT) + os.pathsep
               + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log.open("ab"), text=True, bufsize=1, env=env, cwd=str(ROOT))
        self.starts += 1
        line = self._read(900.0)  # loading torch + the detector takes minutes on a loaded 2-core machine
        if line != "READY":
            self.stop()
            raise RuntimeError(f"fuzz worker did not start (see {self.log})")

    def _read(self, timeout: float) -> str | None:
        """A line from the worker, "" at EOF (it died), None after ``timeout`` seconds."""
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                return None
            return self.proc.stdout.readline().rstrip("\n")
        finally:
            sel.close()

    def analyse(self, path: Path, timeout: float) -> tuple[str, dict | None]:
        """("ok", result) | ("hang", None) | ("crash", {"reason": ...})."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc and self.proc.stdin
        try:
            self.proc.stdin.write(str(path) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read(timeout)
        if line is None:
            self.stop()
            return "hang", None
        if not line:
            rc = self.proc.wait()
            self.proc = None
            return "crash", {"reason": f"worker process died (exit status {rc})"}
        return "ok", json.loads(line)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def tiny_weights(out: Path, input_size: int = 64) -> Path:
    """Random-init members at ``input_size`` px, marked stress-only (fast on a CPU)."""
    from dataclasses import replace

    import timm
    import torch

    from .config import MODEL_SPECS
    from .training.export import save_member

    torch.manual_seed(0)
    for arch in ("legacy_xception", "efficientnet_b0"):
        save_member(timm.create_model(arch, pretrained=False, num_classes=1),
                    replace(MODEL_SPECS[arch], input_size=input_size), out,
                    warning="stress-only random weights: probabilities mean nothing")
    return out


def _classify(case: Case, kind: str, res: dict | None) -> tuple[str, str | None, str]:
    if kind == "hang":
        return "hang", None, "over the time limit (worker killed)"
    if kind == "crash":
        return "crash", None, res["reason"] if res else ""
    assert res is not None
    verdict, reason = res["verdict"], res["reason"]
    if res["escaped"]:
        return "crash", None, "exception escaped analyze: " + reason
    if verdict == "ERROR" and reason.startswith("internal error"):
        return "crash", verdict, reason
    if verdict == "ERROR" and (not reason.strip() or "Traceback" in reason):
        return "unexpected", verdict, "ERROR without a plain reason: " + reason
    if verdict not in ("ERROR", "NO_FACE") and (case.must_fail or not res.get("decodes", True)):
        return "unexpected", verdict, f"a {verdict} verdict on a file " + (
            "that must be refused" if case.must_fail else "no other decoder reads")
    return "ok", verdict, reason


def run_cases(cases: Iterable[Case], out: Path, weights: str, frames: int = 4, timeout_s: float = 30.0,
              keep: bool = False, progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Write each case under ``out/cases``, analyse it in the worker, classify it.
    Files are deleted after analysis unless ``keep`` or the case is a finding
    (findings stay under ``out/findings``)."""
    cases_dir, findings = out / "cases", out / "findings"
    cases_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="worker_tmp_", dir=out))
    worker = _Worker(weights, frames, out / "worker_stderr.log", tmp)
    results: list[Outcome] = []
    try:
        for k, case in enumerate(cases):
            path = cases_dir / case.file_name
            path.write_bytes(case.data)
            t = time.perf_counter()
            kind, res = worker.analyse(path, timeout_s)
            wall = time.perf_counter() - t
            status, verdict, reason = _classify(case, kind, res)
            results.append(Outcome(case.index, case.file_name, case.seed_name, case.mutator, case.note, status,
                                   verdict, reason[:500], round(res.get("seconds", wall) if res else wall, 3),
                                   round(res["peak_rss_mb"], 1) if res and res.get("peak_rss_mb") else None))
            if status != "ok":
                findings.mkdir(exist_ok=True)
                shutil.move(str(path), findings / case.file_name)
            elif not keep:
                path.unlink()
            if progress:
                progress(k + 1)
        # a finding is re-run once, alone in a fresh worker with twice the time: a hang that was only a
        # loaded machine (the CPU is shared) then passes and is counted as ok, with the first try noted
        for k, o in enumerate(results):
            if o.status == "ok":
                continue
            worker.stop()
            case_path = findings / o.file
            kind, res = worker.analyse(case_path, 2 * timeout_s)
            case = Case(o.index, o.seed_name, o.mutator, o.note, case_path.suffix, b"",
                        must_fail=o.mutator in _MUST_FAIL)
            status, verdict, reason = _classify(case, kind, res)
            if status == "ok":
                results[k] = replace(o, status="ok", verdict=verdict,
                                     reason=f"{reason[:300]} (first try: {o.status}, {o.reason[:150]})")
    finally:
        worker.stop()
    left = sorted(p.name for p in tmp.rglob("*"))
    shutil.rmtree(tmp, ignore_errors=True)
    if left:  # the library must not leave temp files behind
        results.append(Outcome(-1, "", "", "tempfiles", "", "unexpected", None,
                               f"left in the worker's TMPDIR: {left[:10]}", 0.0))
    return results


def summarize(outcomes: Sequence[Outcome], seconds: float, worker_starts: int | None = None) -> dict:
    """Counts per status, verdict and mutator; the 10 slowest files; every finding."""
    by = lambda key: {k: sum(1 for o in outcomes if key(o) == k) for k in sorted({str(key(o)) for o in outcomes})}
    return {
        "files": sum(1 for o in outcomes if o.index >= 0),
        "seconds": round(seconds, 1),
        "status": by(lambda o: o.status),
        "verdicts": by(lambda o: str(o.verdict)),
        "mutators": by(lambda o: o.mutator),
        "crashes": sum(o.status == "crash" for o in outcomes),
        "hangs": sum(o.status == "hang" for o in outcomes),
        "unexpected": sum(o.status == "unexpected" for o in outcomes),
        "max_peak_rss_mb": max((o.peak_rss_mb or 0.0 for o in outcomes), default=0.0),
        "slowest": [asdict(o) for o in sorted(outcomes, key=lambda o: -o.seconds)[:10]],
        "findings": [asdict(o) for o in outcomes if o.status != "ok"],
    }


def _text(summary: dict) -> str:
    lines = [f"fuzz: {summary['files']} files in {summary['seconds']:.0f} s: {summary['crashes']} crashes, "
             f"{summary['hangs']} hangs, {summary['unexpected']} unexpected; verdicts {summary['verdicts']}; "
             f"peak RSS of one analysis {summary['max_peak_rss_mb']:.0f} MB",
             "slowest: " + ", ".join(f"{o['file']} {o['seconds']:.1f}s" for o in summary["slowest"][:5])]
    lines += [f"  {o['status'].upper()} {o['file']} ({o['seed_name']}, {o['note']}): {o['reason'][:200]}"
              for o in summary["findings"][:30]]
    return "\n".join(lines)


def _fuzz(args: argparse.Namespace) -> int:
    out = Path(args.out or tempfile.mkdtemp(prefix="stress_fuzz_"))
    out.mkdir(parents=True, exist_ok=True)
    if str(out.resolve()).startswith(str(ROOT) + os.sep) and not str(out.resolve()).startswith(str(ROOT / "runs")):
        print("error: --out must be outside the repository (cases are made from the shared data)", file=sys.stderr)
        return 2
    weights = args.weights or str(tiny_weights(Path(tempfile.mkdtemp(prefix="weights_", dir=out))))
    seeds = collect_seeds()
    t = time.perf_counter()
    cases = (make_case(seeds, args.seed, i) for i in range(args.start, args.start + args.n))

    def progress(k: int) -> None:
        if not args.quiet and (k % 50 == 0 or k == args.n):
            print(f"{k}/{args.n} files, {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    # made one at a time: a case can be megabytes (3000-frame GIFs, whole videos)
    outcomes = run_cases(cases, out, weights, args.frames, args.timeout_s, args.keep, progress)
    summary = {"command": "python -m deepfake_demo.stress " + " ".join(sys.argv[1:] if args.argv is None
                                                                       else args.argv),
               "seed": args.seed, "start": args.start, "n": args.n, "timeout_s": args.timeout_s, "frames": args.frames,
               "seeds": [s.name for s in seeds], **summarize(outcomes, time.perf_counter() - t),
               "outcomes": [asdict(o) for o in outcomes]}
    (out / "fuzz.json").write_text(json.dumps(summary, indent=1))
    print(_text(summary))
    print(f"full results: {out / 'fuzz.json'}")
    return 1 if summary["crashes"] or summary["hangs"] or summary["unexpected"] else 0


# ---------------------------------------------------------------------------------------------- large media

_PROBE = r"""
import json, os, sys, tempfile, time
from pathlib import Path
from deepfake_demo.pipeline import Detector
from deepfake_demo.stress import vm_hwm_mb
det = Detector.load(sys.argv[1], "cpu")
base = vm_hwm_mb()
t = time.perf_counter()
rep = det.analyze(sys.argv[2], frames=int(sys.argv[3]))
print(json.dumps({"verdict": str(rep.verdict), "reason": rep.error or rep.reason,
                  "frames_analyzed": rep.frames_analyzed, "analysis_s": round(time.perf_counter() - t, 1),
                  "peak_rss_mb_before": round(base, 0), "peak_rss_mb": round(vm_hwm_mb(), 0),
                  "timings_s": {k: round(v, 1) for k, v in rep.timings_s.items()}}))
"""


def probe(path: Path, weights: str, frames: int = 32, timeout_s: float = 3600.0) -> dict:
    """Analyse ``path`` in a fresh subprocess with its own empty TMPDIR: its
    verdict, reason, peak RSS (VmHWM, MB) and any temp files it left."""
    tmp = Path(tempfile.mkdtemp(prefix="probe_tmp_"))
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, weights, str(path), str(frames)], capture_output=True,
                           text=True, env=env, timeout=timeout_s, cwd=str(ROOT))
        res = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else {
            "verdict": None, "reason": f"probe exited {r.returncode}: {r.stderr[-800:]}"}
        res["temp_files_left"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_long_video(path: Path, face_rgb, seconds: float, fps: float = 25.0, size: tuple[int, int] = (3840, 2160),
                     fourcc: str = "mp4v") -> dict:
    """Encode ``seconds`` of ``size`` video: the face photo on grey, drifting a
    pixel per frame (so each frame differs). Returns the encode time."""
    import cv2
    import numpy as np

    w, h = size
    face = cv2.cvtColor(np.asarray(face_rgb), cv2.COLOR_RGB2BGR)
    fh, fw = face.shape[:2]
    canvas = np.full((h, w, 3), 128, np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not vw.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video here")
    n = int(round(seconds * fps))
    t = time.perf_counter()
    drift = min(100, (w - fw) // 2)  # the face moves sideways, never off the frame
    for i in range(n):
        x, y = (w - fw) // 2 + (i % (2 * drift + 1)) - drift, (h - fh) // 2
        frame = canvas.copy()
        frame[y:y + fh, x:x + fw] = face
        vw.write(frame)
    vw.release()
    return {"frames": n, "video_s": seconds, "size": f"{w}x{h}", "fps": fps, "encode_s": round(time.perf_counter() - t, 1),
            "mb": round(path.stat().st_size / 2**20, 1)}


def _large(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from PIL import Image

    out = Path(args.out or tempfile.mkdtemp(prefix="stress_large_"))
    out.mkdir(parents=True, exist_ok=True)
    weights = args.weights or str(tiny_weights(Path(tempfile.mkdtemp(prefix="weights_", dir=out))))
    face = np.asarray(Image.open(ROOT / "examples" / "astronaut_real.jpg").convert("RGB"))
    face = cv2.resize(face, (face.shape[1] * 2, face.shape[0] * 2))  # a face of a size 4K would hold
    results: dict[str, dict] = {}

    def case(name: str, path: Path, frames: int = 32, made: dict | None = None) -> None:
        r = probe(path, weights, frames)
        results[name] = {**(made or {}), **r}
        print(f"{name}: {json.dumps(results[name])}", flush=True)

    # images: 20000x20000 (header check refuses it, no decode) and one just under the pixel limit
    big = out / "image_20000.png"
    big.write_bytes(png_bytes(20000, 20000, _zero_rows(20000, 20000)))
    case("image_20000x20000", big, made={"mb": round(big.stat().st_size / 2**20, 2)})
    side = 7000
    edge = out / f"image_{side}.png"
    canvas = np.full((side, side, 3), 128, np.uint8)
    canvas[3000:3000 + face.shape[0], 3000:3000 + face.shape[1]] = face
    Image.fromarray(canvas).save(edge, compress_level=1)
    del canvas
    case(f"image_{side}x{side}", edge)
    # videos: the long 4K one, at 32 frames, and at 256 (must be refused: decoded frames over the limit)
    vid = out / "long_4k.mp4"
    made = write_long_video(vid, face, args.minutes * 60.0, args.fps)
    print(f"encoded {made}", flush=True)
    case("video_4k_32_frames", vid, 32, made)
    case("video_4k_256_frames", vid, 256, made)
    if not args.keep:
        vid.unlink()
    if args.short_s > 0:  # the same 4K at a full frame rate, shorter (encoding here runs at ~3 frames/s)
        short = out / "short_4k.mp4"
        case("video_4k_full_rate_32_frames", short, 32, write_long_video(short, face, args.short_s, 25.0))
        if not args.keep:
            short.unlink()
    # over the side limit, over the duration limit (low resolution and 1 fps keep these cheap to make)
    wide = out / "wide_4100.mp4"
    case("video_4100px_wide", wide, 8, write_long_video(wide, face, 2, 5, (4100, 2160)))
    long = out / "long_16min.mp4"
    case("video_16_minutes", long, 8, write_long_video(long, face[:200, :200], 16 * 60, 1, (320, 240)))
    summary = {"command": "python -m deepfake_demo.stress " + " ".join(sys.argv[1:]), "cases": results}
    (out / "large.json").write_text(json.dumps(summary, indent=1))
    if not args.keep:
        for p in (big, edge, wide, long):
            p.unlink(missing_ok=True)
    print(f"full results: {out / 'large.json'}")
    return 0


def _zero_rows(width: int, height: int) -> bytes:
    """zlib stream of ``height`` filter-0 grey rows of zeros (a valid, decompressible image)."""
    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    return b"".join(z.compress(row) for _ in range(height)) + z.flush()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepfake_demo.stress", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fuzz", help="mutate real media and analyse each file with a time limit")
    f.add_argument("--n", type=int, default=200, help="files to make and analyse (default 200)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--start", type=int, default=0,
                   help="first case index (default 0): a long campaign runs in chunks, e.g. --start 1000 --n 1000, "
                        "and chunks of one seed never repeat a case")
    f.add_argument("--timeout-s", type=float, default=60.0, help="per-file limit (default 60 s)")
    f.add_argument("--frames", type=int, default=4, help="frames sampled per video (default 4)")
    f.add_argument("--out", help="results folder, outside the repository (default: a new temp folder)")
    f.add_argument("--weights", help="weights folder (default: tiny random ones made for the run)")
    f.add_argument("--keep", action="store_true", help="keep every case file, not only the findings")
    f.add_argument("--quiet", action="store_true")
    g = sub.add_parser("large", help="a long 4K video and huge images, peak memory and limits")
    g.add_argument("--minutes", type=float, default=10.0, help="length of the 4K video (default 10)")
    g.add_argument("--fps", type=float, default=1.0,
                   help="its frame rate (default 1: 4K encodes at ~3 frames/s on a 2-core CPU)")
    g.add_argument("--short-s", type=float, default=20.0, help="length of a second, 25 fps 4K clip (default 20 s)")
    g.add_argument("--out", help="results folder (default: a new temp folder)")
    g.add_argument("--weights", help="weights folder (default: tiny random ones)")
    g.add_argument("--keep", action="store_true", help="keep the generated media")
    c = sub.add_parser("soak", help="the app under concurrent gradio_client users: failures, latency, memory")
    c.add_argument("--users", type=int, default=8)
    c.add_argument("--minutes", type=float, default=10.0)
    c.add_argument("--frames", type=int, default=8, help="frames per video request (default 8)")
    c.add_argument("--queue-size", type=int, default=16, help="the app's queue (default 16, as the app's default)")
    c.add_argument("--out", help="results folder (default: a new temp folder)")
    c.add_argument("--weights", help="weights folder (default: tiny random ones)")
    w = sub.add_parser("_worker")
    w.add_argument("--weights", required=True)
    w.add_argument("--frames", type=int, default=4)
    args = p.parse_args(argv)
    args.argv = list(argv) if argv is not None else None
    if args.command == "_worker":
        return _worker(args.weights, args.frames)
    if args.command == "fuzz":
        if args.n < 1 or args.timeout_s <= 0:
            print("error: --n must be at least 1 and --timeout-s positive", file=sys.stderr)
            return 2
        return _fuzz(args)
    if args.command == "soak":
        from .soak import print_summary, soak

        if args.users < 1 or args.minutes <= 0:
            print("error: --users must be at least 1 and --minutes positive", file=sys.stderr)
            return 2
        out = Path(args.out or tempfile.mkdtemp(prefix="soak_"))
        out.mkdir(parents=True, exist_ok=True)
        weights = args.weights or str(tiny_weights(Path(tempfile.mkdtemp(prefix="weights_", dir=out))))
        summary = soak(weights, args.users, args.minutes, out, args.frames, args.queue_size)
        print_summary(summary, out)
        return 1 if summary["failed"] or not summary["app_alive_at_end"] else 0
    return _large(args)


if __name__ == "__main__":
    sys.exit(main())
