"""The leave-one-source-out table: how a member does on a source it never saw.

For each source of :data:`~deepfake_demo.training.config.HOLD_OUT_SOURCES` (one FF++ manipulation at a
time, the DFDC faces, the generated faces with their FFHQ photos) one run trains without it (``--hold-out``:
out of training and of validation, so no checkpoint is chosen on it either), and one reference run trains
on everything, each with the same recipe and number of samples. Every run's best checkpoint is then scored
on the held-out test data of every source; the table compares a source's AUC when it was left out with its
AUC when the reference trained on it.

    python -m deepfake_demo.training.loso run --parallel 2   # resumable: finished runs are kept
    python -m deepfake_demo.training.loso table --out weights/loso.json   # scores them; the card reads it
    python -m deepfake_demo.training.loso --member legacy_xception run --only none generated   # the Xception's
    python -m deepfake_demo.training.loso --member legacy_xception table --out weights/loso_legacy_xception.json
    python -m deepfake_demo.training.loso --member tf_efficientnet_lite2 run --parallel 2   # the Lite2's, every source

Each member's recipe (:data:`RECIPES`) gets its own runs and table; a table may hold only some sources
(``--only``), and the card shows the rows it has.

The runs are short (a CPU budget), so their absolute figures sit below the shipped members'; the point of
the table is the gap between "left out" and "trained on", which says how far to trust the shipped
ensemble on a source nobody has trained it on.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cards import LOSO_FILE, loso_markdown
from .config import FAKE_GROUPS, HOLD_OUT_SOURCES, RUNS_DIR
from .pretrained import imagenet_file

__all__ = ["RECIPES", "loso_file", "run_commands", "test_sets", "score_run", "table", "main"]

LOSO_DIR = RUNS_DIR / "loso"  # one folder per recipe (member arch) below it
REFERENCE = "none"  # the run that holds nothing out
_COMMON = ["--input-size", "160", "--weight-decay", "0.01", "--seed", "3", "--epochs", "6", "--samples-per-epoch",
           "3000", "--batch-size", "32", "--schedule", "cosine", "--dfdc-frac", "0.3", "--ffhq-frac", "0.2",
           "--gan-frac", "0.1", "--soften-frac", "0.1", "--sbi-landmarks", "mesh", "--select-on", "val_auc_cross",
           "--workers", "0", "--threads", "1"]


def _recipe(arch: str, *opts: str) -> list[str]:
    """A member's first stage: ``arch`` from its ImageNet weights (``training.pretrained``), ``opts``, then
    the shared plan."""
    return ["--arch", arch, "--pretrained", str(imagenet_file(arch, RUNS_DIR / "pretrained")), *opts, *_COMMON]


# the recipe of every run, per member: that member's first stage (ImageNet start, its learning rate and
# precision), cut to the same number of samples (18,000: 17-20 minutes on one CPU thread) so that runs
# sharing the CPU stay comparable, and the members' tables too
RECIPES = {
    "tf_efficientnet_lite0": _recipe("tf_efficientnet_lite0", "--lr", "6e-4"),
    "legacy_xception": _recipe("legacy_xception", "--cpu-bf16", "--lr", "4e-4"),
    # the shipped EfficientNet member's first stage (fp32, 160 px; its later runs at 224 px warm-restart it)
    "tf_efficientnet_lite2": _recipe("tf_efficientnet_lite2", "--lr", "4e-4"),
}
DEFAULT_MEMBER = "tf_efficientnet_lite0"
# how the model card titles each member's table; the Lite0 recipe's table stays after the Lite2 replaced it
MEMBER_TITLES = {"tf_efficientnet_lite0": "EfficientNet-Lite0 (the EfficientNet member until 2026-12-07)",
                 "legacy_xception": "Xception", "tf_efficientnet_lite2": "EfficientNet-Lite2"}
TITLES = {"Deepfakes": "FF++ Deepfakes", "Face2Face": "FF++ Face2Face", "FaceSwap": "FF++ FaceSwap",
          "NeuralTextures": "FF++ NeuralTextures", "dfdc": "DFDC face swaps", "generated": "StyleGAN faces"}


def loso_file(member: str) -> str:
    """The table's file beside the cards: ``loso.json`` for the EfficientNet recipe (the first table made),
    ``loso_<member>.json`` for another member's."""
    return LOSO_FILE if member == DEFAULT_MEMBER else f"loso_{member}.json"


def run_commands(minutes: float = 40.0, root: Path | None = None,
                 member: str = DEFAULT_MEMBER) -> dict[str, list[str]]:
    """The train command of each run of ``member``'s recipe, keyed by what it holds out (``none`` for the
    reference)."""
    root = root or LOSO_DIR / member
    out = {}
    for src in (REFERENCE, "generated", "dfdc") + HOLD_OUT_SOURCES[:4]:
        cmd = [sys.executable, "-m", "deepfake_demo.train", *RECIPES[member], "--max-minutes", f"{minutes:g}",
               "--name", f"loso_{src}", "--out-dir", str(root / src)]
        out[src] = cmd + ([] if src == REFERENCE else ["--hold-out", src])
    return out


def _run_all(minutes: float, parallel: int, root: Path, only: Sequence[str] | None, member: str) -> int:
    """Run the commands, ``parallel`` at a time; a run with a ``done`` marker is skipped, an interrupted one
    resumes from its last.pt with the rest of its wall-clock budget."""
    todo = [(s, c) for s, c in run_commands(minutes, root, member).items()
            if (not only or s in only) and not (root / s / "done").exists()]
    running: list[tuple[str, subprocess.Popen]] = []
    failed = 0
    while todo or running:
        while todo and len(running) < parallel:
            src, cmd = todo.pop(0)
            (root / src).mkdir(parents=True, exist_ok=True)
            log = open(root / src / "train.log", "a")
            print(f"start {src}: {' '.join(cmd[1:])}", flush=True)
            running.append((src, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(5)
        for item in list(running):
            src, proc = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode == 0:
                    (root / src / "done").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
                    print(f"done {src}", flush=True)
                else:
                    failed += 1
                    print(f"FAILED {src} (rc {proc.returncode}): see {root / src / 'train.log'}", flush=True)
    return 1 if failed else 0


def test_sets(data_root: Path | None = None) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], dict]]:
    """Each source's held-out test data: (real groups, fake groups, subsets of indices). FF++ methods
    against the faces/test originals; DFDC's held-out 15 % of originals with their fakes; the held-out
    quarters of the StyleGAN faces against those of the FFHQ photos. No run trains or validates on any."""
    from ..evaluate import dfdc_held_out
    from .data import DATA_ROOT, DFDC_GROUPS, FFHQ_GROUP, GAN_GROUPS, list_group, synthetic_split

    root = data_root or DATA_ROOT
    out: dict[str, Any] = {g.split("_", 2)[-1]: (("test_real_ffpp",), ("test" + g[len("train"):],), {})
                           for g in FAKE_GROUPS}
    out["dfdc"] = ((DFDC_GROUPS[0],), (DFDC_GROUPS[1],), dfdc_held_out(data_root))
    synth = {g: synthetic_split(g, len(list_group(g, root)))[2] for g in (FFHQ_GROUP,) + tuple(GAN_GROUPS)}
    out["generated"] = ((FFHQ_GROUP,), tuple(GAN_GROUPS), synth)
    return out


def score_run(run_dir: Path, sets: dict, data_root: Path | None = None) -> dict[str, Any]:
    """AUC of ``run_dir``'s best checkpoint on every source's test data, with the run's facts."""
    from ..evaluate import _member_crops
    from .config import member_spec
    from .loop import load_run, predict_logits, read_metrics
    from .metrics import roc_auc

    model, cfg, checkpoint = load_run(run_dir, "best")
    spec = member_spec(cfg)
    aucs, ns = {}, {}
    for src, (reals, fakes, subsets) in sets.items():
        crops, y, _ = _member_crops(spec, reals + fakes, 160, data_root, subsets)
        z = predict_logits(model, crops, spec)
        aucs[src], ns[src] = roc_auc(y, z), int(len(y))
    hist = read_metrics(run_dir)
    return {"hold_out": cfg.hold_out, "best_epoch": int(checkpoint.get("epoch", -1)) + 1,  # 1-based, as metrics.jsonl
            "val_auc_cross": (checkpoint.get("metrics") or {}).get("val_auc_cross"), "epochs_run": len(hist),
            "samples_seen": int(hist[-1].get("step", 0)) * cfg.batch_size if hist else None, "test_auc": aucs, "n": ns}


def table(root: Path | None = None, data_root: Path | None = None, member: str = DEFAULT_MEMBER) -> dict[str, Any]:
    """Score every finished run of ``member``'s recipe under ``root``; the rows the card shows."""
    root = root or LOSO_DIR / member
    sets = test_sets(data_root)
    runs = {p.name: score_run(p, sets, data_root) for p in sorted(root.iterdir()) if (p / "best.pt").exists()}
    if REFERENCE not in runs:
        raise SystemExit(f"no reference run ({root / REFERENCE}): run "
                         f"`python -m deepfake_demo.training.loso run --member {member}`")
    rows = []
    for src in HOLD_OUT_SOURCES:
        if src in runs:
            rows.append({"source": src, "title": TITLES[src], "n": runs[src]["n"][src],
                         "auc_left_out": runs[src]["test_auc"][src], "auc_trained_on": runs[REFERENCE]["test_auc"][src]})
    flag = "" if member == DEFAULT_MEMBER else f" --member {member}"
    return {"command": f"python -m deepfake_demo.training.loso{flag} table --out weights/{loso_file(member)}",
            "member": member, "member_title": MEMBER_TITLES.get(member, member), "recipe": " ".join(RECIPES[member]),
            "runs": runs, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.training.loso", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--member", choices=sorted(RECIPES), default=DEFAULT_MEMBER,
                    help="whose recipe the runs follow (default %(default)s); its runs live in runs/loso/<member>")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the runs (resumable)")
    r.add_argument("--minutes", type=float, default=40.0, help="wall-clock limit of each run (a safety stop: the "
                                                                  "recipe's 6 epochs normally end first)")
    r.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    r.add_argument("--only", nargs="+", choices=(REFERENCE,) + HOLD_OUT_SOURCES)
    r.add_argument("--root", type=Path, help="default runs/loso/<member>")
    t = sub.add_parser("table", help="score the finished runs and write the table")
    t.add_argument("--root", type=Path, help="default runs/loso/<member>")
    t.add_argument("--out", type=Path, help="JSON file (weights/loso.json and weights/loso_<member>.json are what "
                                            "the model card reads)")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return _run_all(args.minutes, args.parallel, args.root or LOSO_DIR / args.member, args.only, args.member)
    res = table(args.root, member=args.member)
    print("\n".join(loso_markdown([res])))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
