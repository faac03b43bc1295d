"""Command line: ``python -m deepfake_demo scan PATH [PATH ...]``.

Exit status: 0 when every input was analysed (any verdict but ERROR), 2 when
any input failed or nothing could be loaded; 1 is never used for bad input.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .aggregate import STRATEGIES
from .config import DECISION, IMAGE_EXTENSIONS, LIMITS, VIDEO_EXTENSIONS
from .media import kind_of
from .report import Report, error_report

__all__ = ["main", "build_parser"]


def _prog() -> str:
    """The name the user typed: ``deepfake-demo`` for the installed command, else the module form."""
    name = os.path.basename(sys.argv[0] if sys.argv else "")
    return name if name.startswith("deepfake-demo") else "python -m deepfake_demo"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=_prog(),
                                description="Deepfake detection with Grad-CAM heatmaps for every face.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="analyse images and videos",
                       description="Analyse images and videos; a directory is scanned for media files.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image, video or directory")
    s.add_argument("--json", action="store_true", help="print one JSON object per input per line")
    s.add_argument("--frames", type=int, default=DECISION.default_frames,
                   help=f"frames to sample from each video (default {DECISION.default_frames}, "
                        f"max {LIMITS.max_frames_analyzed})")
    s.add_argument("--heatmaps", metavar="DIR", help="write annotated frames and face heatmaps into DIR")
    s.add_argument("--opacity", type=float, default=0.5, help="heatmap opacity 0..1 (default 0.5)")
    s.add_argument("--weights", metavar="DIR_OR_HUB_ID",
                   help="weights directory or Hugging Face Hub repo id (default: $DEEPFAKE_DEMO_WEIGHTS or weights/)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    s.add_argument("--threshold", type=float, default=None,
                   help="decision threshold (default: the one in the model cards)")
    s.add_argument("--uncertain-band", type=float, default=None,
                   help=f"half-width of the UNCERTAIN band around the threshold (default {DECISION.uncertain_band})")
    s.add_argument("--aggregation", choices=sorted(STRATEGIES), default=None,
                   help=f"how a face's frames are combined (default {DECISION.aggregation})")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _expand(paths: Sequence[str]) -> list[str]:
    exts = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(str(f) for f in Path(p).rglob("*") if f.is_file() and f.suffix.lower() in exts)
            out.extend(found or [p])  # an empty directory is reported as an error below
        else:
            out.append(p)
    return out


def _emit(report: Report, as_json: bool) -> None:
    print(report.to_json() if as_json else report.summary(), flush=True)


def _scan(args: argparse.Namespace) -> int:
    paths = _expand(args.paths)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        print("error: --threshold must be between 0 and 1", file=sys.stderr)
        return 2
    if args.uncertain_band is not None and not 0.0 <= args.uncertain_band < 0.5:
        print("error: --uncertain-band must be between 0 and 0.5", file=sys.stderr)
        return 2
    if not 1 <= args.frames <= LIMITS.max_frames_analyzed:
        print(f"error: --frames must be between 1 and {LIMITS.max_frames_analyzed}", file=sys.stderr)
        return 2
    if args.heatmaps:
        try:
            Path(args.heatmaps).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"error: cannot write heatmaps to {args.heatmaps}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    from .models import NoWeightsError, WeightsError
    from .pipeline import Detector

    try:
        det = Detector.load(args.weights, args.device)
    except (NoWeightsError, WeightsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        for p in paths:
            _emit(error_report(p, str(exc), kind=kind_of(p, sniff=False)), args.json)
        return 2

    bars: dict[str, object] = {}

    def progress_for(p: str):
        if args.quiet:
            return None
        from tqdm import tqdm

        bar = bars[p] = tqdm(total=100, desc=Path(p).name[:40], file=sys.stderr, leave=False,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

        def progress(frac: float, desc: str) -> None:
            bar.n = round(100 * frac)
            bar.set_postfix_str(desc, refresh=True)
        return progress

    # on CUDA the next file is decoded while this one is scored
    reports = det.analyze_many([p for p in paths if not os.path.isdir(p)], frames=args.frames,
                               progress_for=progress_for, heatmaps=bool(args.heatmaps), threshold=args.threshold,
                               uncertain_band=args.uncertain_band, aggregation=args.aggregation)
    failed = 0
    for p in paths:
        if os.path.isdir(p):
            report = error_report(p, "directory holds no image or video files")
        else:
            report = next(reports)
        bar = bars.pop(p, None)
        if bar is not None:
            bar.close()
        if args.heatmaps and report.ok and report.faces:
            from .render import write_heatmaps

            try:
                written = write_heatmaps(report, args.heatmaps, args.opacity)
            except OSError as exc:
                print(f"{p}: could not write heatmaps: {exc}", file=sys.stderr)
            else:
                if not args.quiet:
                    print(f"{p}: wrote {len(written)} heatmap image(s) to {args.heatmaps}", file=sys.stderr)
        failed += not report.ok
        _emit(report, args.json)
        del report  # its frames: do not hold them while the next file is decoded and scored
    return 2 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scan":
        return _scan(args)
    return 2
