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
    from .training.trainer import SELECT_METRICS, TrainConfig

    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    helps = {
        "arch": "timm architecture (legacy_xception, efficientnet_b0, ...)",
        "input_size": "model input side in pixels (written into the card)",
        "samples_per_epoch": "samples drawn per epoch (validation + checkpoint after each)",
        "schedule": "onecycle | cosine | time (cosine annealed over --max-minutes)",
        "loss": "bce | focal",
        "device": "auto | cpu | cuda[:N]; AMP (bf16) and channels-last on CUDA",
        "pretrained": "path to a .safetensors/.pt state dict to start from (hub-capable machines)",
        "init": "fine-tune a trained member: its best.pt/last.pt or exported .safetensors, head included",
        "max_minutes": "wall-clock budget: stop and checkpoint when spent",
        "max_steps": "stop after this many optimiser steps",
        "resume": "resume from run_dir/last.pt if present",
        "out_dir": "run directory (default runs/<arch>_<size>)",
        "keep_epochs": "also keep every epoch's weights in run_dir/epochs/ (for --average)",
        "ffhq_frac": "share of real samples drawn from FFHQ photos of real people (half of synthetic/real/ffhq "
                     "trains, a quarter validates, a quarter stays held out for evaluate); 0 = not used",
        "select_on": "validation figure best.pt is chosen on: val_auc (all of validation) or val_auc_ffpp (FF++ "
                     "originals against FF++ fakes only, the part like faces/test; UTKFace/FFHQ reals flatter val_auc)",
        "soften_frac": "share of samples, real and fake alike, that first lose most of their detail (strong "
                       "blur or a face 20-40 %% of the crop wide): such faces should read as little evidence, "
                       "not as FAKE; 0 = not used",
        "gan_frac": "share of all samples drawn from StyleGAN/StyleGAN2 faces (half of each synthetic/fake group "
                    "trains, a quarter validates, a quarter stays held out), taken from the other fakes; use with "
                    "--ffhq-frac; 0 = not used",
    }
    choices = {"select_on": SELECT_METRICS}
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        d = getattr(defaults, f.name)
        if isinstance(d, bool):
            ap.add_argument(name, action=argparse.BooleanOptionalAction, default=d, help=helps.get(f.name))
            continue
        typ = {"int": int, "float": float}.get(type(d).__name__, str)
        if f.type in ("int | None",):
            typ = int
        elif f.type in ("float | None",):
            typ = float
        ap.add_argument(name, type=typ, default=d, help=helps.get(f.name), choices=choices.get(f.name))
    ap.add_argument("--export", metavar="DIR", help="after training, write the best checkpoint to DIR as a member")
    ap.add_argument("--export-only", action="store_true", help="skip training; export the run's best checkpoint")
    ap.add_argument("--card-json", help="JSON file of extra keys for the model card")
    ap.add_argument("--balanced-threshold", action="store_true",
                    help="on export: the balanced-accuracy threshold on validation instead of 0.5 on the "
                         "calibrated probability (see THRESHOLD_RULE in training/trainer.py)")
    ap.add_argument("--average", nargs="+", metavar="CKPT",
                    help="no training: average these epoch checkpoints of the run (--keep-epochs), re-estimate "
                         "batch-norm statistics, write run_dir/avg.pt (export it with --which avg)")
    ap.add_argument("--which", default="best", help="checkpoint of the run to export: best (default), last, avg")
    ap.add_argument("--fit-ensemble", nargs="+", metavar="RUN_DIR_OR_MEMBER",
                    help="no training: fit the ensemble temperature and threshold on the validation logits of "
                         "these runs (members already exported to --export DIR) and write DIR/ensemble.json; a "
                         "member whose run is gone can be named by its card in DIR (e.g. legacy_xception): its "
                         "validation logits are then recomputed from its weights")
    return ap


def parse_config(argv: Sequence[str] | None = None):
    """(TrainConfig, argparse namespace) from command-line flags."""
    from .training.trainer import TrainConfig

    args = _parser().parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    fakes = cfg.ffpp_fake_frac + cfg.sbi_frac
    if not 0 <= cfg.gan_frac < fakes:
        _parser().error(f"--gan-frac must be at least 0 and below the fake share {fakes:g} "
                        "(--ffpp-fake-frac + --sbi-frac) it is taken from")
    return cfg, args


def main(argv: Sequence[str] | None = None) -> int:
    from .models import DEFAULT_WEIGHTS_DIR
    from .training.trainer import average_checkpoints, export_member, fit_ensemble, train

    cfg, args = parse_config(argv)
    cmd = "python -m deepfake_demo.train " + " ".join(sys.argv[1:] if argv is None else list(argv))
    out_dir = args.export or DEFAULT_WEIGHTS_DIR
    threshold = None if args.balanced_threshold else 0.5
    if args.fit_ensemble:
        print(f"wrote {fit_ensemble(args.fit_ensemble, out_dir, threshold=threshold, reproduce=cmd)}")
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
