"""Train one ensemble member: ``python -m deepfake_demo.train --arch efficientnet_b0 ...``

Then export it with ``--export weights/`` (fp16 safetensors + model card with
temperature fitted on the validation split, threshold by THRESHOLD_RULE). See notes/training.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Sequence

__all__ = ["main", "parse_config"]


def _parser() -> argparse.ArgumentParser:
    from .training.config import HOLD_OUT_SOURCES, SBI_LANDMARKS, SELECT_METRICS, TrainConfig, help_of
    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    choices = {"select_on": SELECT_METRICS, "sbi_landmarks": SBI_LANDMARKS, "hold_out": HOLD_OUT_SOURCES}
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        d = getattr(defaults, f.name)
        if isinstance(d, bool):
            ap.add_argument(name, action=argparse.BooleanOptionalAction, default=d, help=help_of(f.name))
            continue
        typ = {"int": int, "float": float}.get(type(d).__name__, str)
        if f.type in ("int | None",):
            typ = int
        elif f.type in ("float | None",):
            typ = float
        ap.add_argument(name, type=typ, default=d, help=help_of(f.name), choices=choices.get(f.name))
    ap.add_argument("--export", metavar="DIR", help="after training, write the best checkpoint to DIR as a member")
    ap.add_argument("--export-only", action="store_true", help="skip training; export the run's best checkpoint")
    ap.add_argument("--card-json", help="JSON file of extra keys for the model card")
    ap.add_argument("--balanced-threshold", action="store_true",
                    help="on export: the balanced-accuracy threshold on validation instead of 0.5 on the "
                         "calibrated probability (see THRESHOLD_RULE in training/calibrate.py)")
    ap.add_argument("--average", nargs="+", metavar="CKPT",
                    help="no training: average these epoch checkpoints of the run (--keep-epochs), re-estimate "
                         "batch-norm statistics, write run_dir/avg.pt (export it with --which avg)")
    ap.add_argument("--which", default="best", help="checkpoint of the run to export: best (default), last, avg")
    ap.add_argument("--fit-ensemble", nargs="+", metavar="RUN_DIR_OR_MEMBER",
                    help="no training: fit the ensemble temperature and threshold on the validation logits of "
                         "these runs (members already exported to --export DIR) and write DIR/ensemble.json; a "
                         "member whose run is gone can be named by its card in DIR (e.g. legacy_xception): its "
                         "validation logits are then recomputed from its weights, on the first run's split")
    ap.add_argument("--equal-weights", action="store_true",
                    help="with --fit-ensemble: the plain mean of the members' calibrated logits instead of a "
                         "weight per member fitted on validation")
    ap.add_argument("--fit-drop-twins", type=float, default=0.0, metavar="C",
                    help="with --fit-ensemble: fit without the FF++ validation originals that correlate at least C "
                         "(0.93) with a training original of the random split, where a member trained on that split "
                         "has seen their video and looks surer than it is on new ones; 0 = fit on all of validation")
    return ap


def parse_config(argv: Sequence[str] | None = None):
    """(TrainConfig, argparse namespace) from command-line flags."""
    from .training.config import TrainConfig
    args = _parser().parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    fakes = cfg.ffpp_fake_frac + cfg.sbi_frac
    if not 0 <= cfg.gan_frac < fakes:
        _parser().error(f"--gan-frac must be at least 0 and below the fake share {fakes:g} "
                        "(--ffpp-fake-frac + --sbi-frac) it is taken from")
    return cfg, args


def main(argv: Sequence[str] | None = None) -> int:
    from .models import DEFAULT_WEIGHTS_DIR
    from .training.averaging import average_checkpoints
    from .training.calibrate import export_member, fit_ensemble
    from .training.loop import train
    cfg, args = parse_config(argv)
    cmd = "python -m deepfake_demo.train " + " ".join(sys.argv[1:] if argv is None else list(argv))
    out_dir = args.export or DEFAULT_WEIGHTS_DIR
    threshold = None if args.balanced_threshold else 0.5
    if args.fit_drop_twins and not args.fit_ensemble:
        raise SystemExit("--fit-drop-twins goes with --fit-ensemble")
    if args.fit_ensemble:
        out = fit_ensemble(args.fit_ensemble, out_dir, threshold=threshold, equal_weights=args.equal_weights,
                           drop_twins=args.fit_drop_twins, reproduce=cmd)
        print(f"wrote {out}")
        return 0
    if args.average:
        import torch

        out = average_checkpoints(args.average, cfg.run_dir)
        m = torch.load(out, map_location="cpu", weights_only=False)["metrics"]
        print(f"wrote {out}: epochs {m['averaged_epochs']}, validation AUC {m['val_auc']:.4f}, "
              f"log-loss {m['val_log_loss']:.4f}, ECE {m['val_ece']:.4f}")
    elif not args.export_only:
        summary = train(cfg)
        print(json.dumps(summary, indent=1, default=str))
    if args.export or args.export_only:
        extra = json.loads(open(args.card_json).read()) if args.card_json else {}
        extra.setdefault("reproduce", cmd)
        card = export_member(cfg.run_dir, out_dir, which=args.which, threshold=threshold, **extra)
        print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
