"""The training loop of one member (:func:`train`): model, optimiser and schedule, one pass per epoch
over an :class:`~.dataset.EpochSet`, validation and checkpoints after each; resumable."""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import ModelSpec
from .augment import resize_to
from .calibrate import calibration
from .config import SELECT_METRICS, TrainConfig, member_spec
from .dataset import (TWIN_CUT, EpochSet, TrainData, cross_val_auc, fake_val_groups, load_train_data,
                      untwinned_val_mask)
from .metrics import roc_auc

__all__ = ["train", "predict_logits", "load_run", "load_weights", "build_for_training"]


def predict_logits(model, images: np.ndarray, spec: ModelSpec, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Raw logits (N,) of uint8 crops (N, S, S, 3), resized to the spec's input size."""
    import torch

    from ..models import to_model_input

    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            batch = np.stack([resize_to(im, spec.input_size) for im in images[s:s + batch_size]])
            x = to_model_input(batch, spec, device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                out.append(model(x).float().view(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _loss_fn(cfg: TrainConfig):
    import torch
    import torch.nn.functional as F

    if cfg.loss == "bce":
        return lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)
    if cfg.loss == "focal":
        def focal(logits, y):
            bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            p_t = torch.exp(-bce)
            return ((1 - p_t) ** cfg.focal_gamma * bce).mean()
        return focal
    raise ValueError(f"unknown loss {cfg.loss!r}; use bce or focal")


def load_weights(path: str) -> dict:
    """A model state dict from an exported member (.safetensors, fp16 is cast
    back by load_state_dict) or a run checkpoint (best.pt / last.pt / avg.pt)."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return checkpoint["model"] if isinstance(checkpoint, dict) and "model" in checkpoint else checkpoint


def _one_thread_worker(_worker_id: int) -> None:
    """Each data-loading worker is one process: OpenCV's own thread pool inside it
    would only oversubscribe the cores the other workers use (DataLoader already
    gives each worker one torch thread)."""
    cv2.setNumThreads(1)


def _init_head(model) -> None:
    """Start the one-logit head near zero. timm's EfficientNet init draws a
    Linear layer from U(-1/sqrt(fan_out), ...), which for one output is
    U(-1, 1) over 1280 features: initial logits of several units and a
    from-scratch BCE stuck near loss 2 and chance accuracy for a whole epoch."""
    import torch

    head = model.get_classifier()
    if isinstance(head, torch.nn.Linear):
        torch.nn.init.normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)


def build_for_training(cfg: TrainConfig):
    """The timm model of ``cfg`` (one logit, dropout 0.2), from ``--pretrained`` ImageNet weights (head
    replaced: every other tensor must fit) or ``--init`` (every tensor must fit), else from scratch."""
    import timm

    model = timm.create_model(cfg.arch, pretrained=False, num_classes=1, drop_rate=0.2)
    _init_head(model)
    if cfg.pretrained:
        from .pretrained import load_backbone

        load_backbone(model, cfg.pretrained)
        print(f"pretrained backbone from {cfg.pretrained}")
    if cfg.init:
        model.load_state_dict(load_weights(cfg.init), strict=True)
        print(f"initialised from {cfg.init}")
    return model


def _scheduler(opt, cfg: TrainConfig, total: int):
    import torch

    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    if cfg.schedule == "time":
        if not cfg.max_minutes:
            raise ValueError("--schedule time anneals over --max-minutes; give it")
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)  # lr set by wall clock in the loop
    if cfg.schedule == "cosine":
        warm = max(1, total // 20)
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    raise ValueError(f"unknown schedule {cfg.schedule!r}; use onecycle, cosine or time")


def _time_lr(cfg: TrainConfig, elapsed_s: float) -> float:
    """The learning rate of ``--schedule time``: a 5 % warm-up, then cosine annealed over the wall-clock
    budget (a CPU run's speed is unknown in advance on shared cores)."""
    budget_s = cfg.max_minutes * 60
    f = min(1.0, elapsed_s / budget_s)
    scale = min(1.0, (elapsed_s + 1) / (0.05 * budget_s)) * 0.5 * (1 + math.cos(math.pi * f))
    return cfg.lr * max(scale, 0.01)


def _epoch_record(cfg, data: TrainData, val_logits, epoch, step, lr, stats, t0,
                  keep: np.ndarray | None = None) -> dict[str, Any]:
    """One line of metrics.jsonl. ``keep``: :func:`~.dataset.untwinned_val_mask` over the split, for
    ``val_auc_cross_untwinned``."""
    yv = data.val_labels
    cal = calibration(yv, val_logits, data.val_groups)
    per_group = {}
    for g in fake_val_groups(data):
        m = np.array(data.val_groups) == g
        per_group[g] = roc_auc(np.r_[np.zeros(int((yv == 0).sum())), np.ones(int(m.sum()))],
                               np.r_[val_logits[yv == 0], val_logits[m]])
    return {
        "epoch": epoch + 1, "step": step, "lr": lr,
        "train_loss": stats["loss"] / max(stats["n"], 1), "train_acc": stats["correct"] / max(stats["n"], 1),
        "train_img_per_s": stats["n"] / max(stats["s"], 1e-9), "samples": stats["n"],
        "val_auc": cal["auc"], "val_auc_ffpp": cal["auc_ffpp"], "val_auc_cross": cal["auc_cross"],
        **({} if keep is None else {"val_auc_cross_untwinned": cross_val_auc(yv, data.val_groups, val_logits, keep)}),
        "val_auc_by_source": cal["auc_by_source"], "val_log_loss_raw": cal["log_loss_before"],
        "val_temperature": cal["temperature"], "val_log_loss": cal["log_loss"], "val_ece": cal["ece"],
        "val_acc": cal["acc"], "val_auc_per_group": per_group, "elapsed_s": time.time() - t0,
    }


def train(cfg: TrainConfig, data: TrainData | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) one member. Writes ``run_dir/last.pt`` every epoch,
    ``best.pt`` at the best validation figure (``cfg.select_on``), and ``metrics.jsonl``.
    Returns the final summary (best epoch and its figures, steps, data counts)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from ..models import resolve_device, to_model_input

    if cfg.select_on not in SELECT_METRICS:
        raise ValueError(f"unknown --select-on {cfg.select_on!r}; use one of {', '.join(SELECT_METRICS)}")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    cuda = device.startswith("cuda")
    if cuda:  # fixed input size: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = member_spec(cfg)
    data = data or load_train_data(cfg)
    # the originals a model trained on the random split has seen a frame of (--init from such weights)
    keep = (untwinned_val_mask(cfg, data.val_groups, TWIN_CUT) if cfg.select_on == "val_auc_cross_untwinned"
            else None)

    model = build_for_training(cfg).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = math.ceil(cfg.samples_per_epoch / cfg.batch_size) * cfg.epochs
    sched = _scheduler(opt, cfg, total)
    loss_fn = _loss_fn(cfg)
    teacher = None
    if cfg.teacher:
        from .distill import load_teacher

        teacher = load_teacher(cfg.teacher, spec, device)
        print(f"distilling from {teacher.name} (T {teacher.temperature:.3f}), weight {cfg.distill_weight:g}")

    start_epoch, step, best, prior_s = 0, 0, {"val_auc": -1.0}, 0.0
    last = run_dir / "last.pt"
    if cfg.resume and last.exists():
        checkpoint = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["opt"])
        sched.load_state_dict(checkpoint["sched"])
        start_epoch, step, best = checkpoint["epoch"] + 1, checkpoint["step"], checkpoint["best"]
        prior_s = checkpoint.get("elapsed_s", 0.0)
        print(f"resumed {last} at epoch {start_epoch}, step {step}")
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    t0 = time.time() - prior_s  # elapsed time survives a resume
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    stop = False
    lr_now = cfg.lr
    for epoch in range(start_epoch, cfg.epochs):
        ds = EpochSet(data, cfg, epoch)
        dl = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                        drop_last=len(ds) >= cfg.batch_size, pin_memory=cuda,
                        persistent_workers=False, worker_init_fn=_one_thread_worker)
        model.train()
        it = dl
        if progress:
            from tqdm import tqdm

            it = tqdm(dl, desc=f"{cfg.run_name} ep {epoch + 1}/{cfg.epochs}", mininterval=10)
        te = time.time()
        stats = {"n": 0, "loss": 0.0, "correct": 0, "s": 0.0}
        for x, y in it:
            if cfg.schedule == "time":
                lr_now = _time_lr(cfg, time.time() - t0)
                for gr in opt.param_groups:
                    gr["lr"] = lr_now
            soft = teacher.probability(x, device) if teacher is not None else None
            x = to_model_input(x, spec, device)
            y = y.to(device)
            with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda or cfg.cpu_bf16):
                logits = model(x).float().view(-1)
                loss = loss_fn(logits, y)
                if soft is not None:
                    w = cfg.distill_weight
                    loss = (1 - w) * loss + w * F.binary_cross_entropy_with_logits(logits, soft)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if step < total - 1:
                sched.step()
            step += 1
            stats["n"] += len(y)
            stats["loss"] += float(loss.detach()) * len(y)
            stats["correct"] += int(((logits > 0).float() == y).sum())
            if progress and hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{stats['loss'] / stats['n']:.3f}", acc=f"{stats['correct'] / stats['n']:.3f}",
                               refresh=False)
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stop = True
            if budget_s is not None and time.time() - t0 > budget_s:
                stop = True
            if stop:
                break
        stats["s"] = time.time() - te
        val_logits = predict_logits(model, data.val_images, spec, device)
        # the time schedule sets the rate before each step (the LambdaLR's own step resets it after)
        lr = lr_now if cfg.schedule == "time" else opt.param_groups[0]["lr"]
        rec = _epoch_record(cfg, data, val_logits, epoch, step, lr, stats, t0, keep)
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()
                          if k not in ("val_auc_per_group", "val_auc_by_source")}), flush=True)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if rec[cfg.select_on] > best.get(cfg.select_on, -1.0):
            best = {"val_auc": rec["val_auc"], "val_auc_ffpp": rec["val_auc_ffpp"],
                    "val_auc_cross": rec["val_auc_cross"], cfg.select_on: rec[cfg.select_on],
                    "epoch": epoch + 1, "step": step}
            _save(run_dir / "best.pt", {"model": state, "epoch": epoch, "val_logits": val_logits,
                                        "val_labels": data.val_labels, "val_groups": data.val_groups,
                                        "config": asdict(cfg), "metrics": rec})
        _save(last, {"model": state, "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch,
                     "step": step, "best": best, "config": asdict(cfg), "elapsed_s": time.time() - t0})
        if cfg.keep_epochs:
            (run_dir / "epochs").mkdir(exist_ok=True)
            torch.save({"model": state, "epoch": epoch + 1}, run_dir / "epochs" / f"ep{epoch + 1:02d}.pt")
        if stop:
            break
    return {"run_dir": str(run_dir), "best": best, "steps": step, "counts": data.counts}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The epoch records :func:`train` appended to ``run_dir/metrics.jsonl``, in the order logged; an epoch
    logged twice (a run started again in its folder) keeps its last line, at that place; unreadable lines are skipped.
    Empty when the file is absent."""
    path = Path(run_dir) / "metrics.jsonl"
    by_epoch: dict[Any, dict[str, Any]] = {}
    for k, line in enumerate(path.read_text().splitlines() if path.exists() else []):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            by_epoch.pop(rec.get("epoch", f"line {k}"), None)  # re-logged: its place moves to the last line
            by_epoch[rec.get("epoch", f"line {k}")] = rec
    return list(by_epoch.values())


def _save(path: Path, obj: dict) -> None:
    """torch.save through a temporary file: an interrupted run never leaves a half-written checkpoint."""
    import torch

    tmp = path.with_suffix(".pt.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_run(run_dir: str | Path, which: str = "best"):
    """``run_dir/<which>.pt`` as (model in eval mode, its TrainConfig, the checkpoint dict)."""
    import timm
    import torch

    checkpoint = torch.load(Path(run_dir) / f"{which}.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    model = timm.create_model(cfg.arch, pretrained=False, num_classes=1)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), cfg, checkpoint
