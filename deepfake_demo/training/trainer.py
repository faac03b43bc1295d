"""Train one ensemble member on cached face crops + Self-Blended Images.

Real: FF++ originals and UTKFace (and FFHQ photos with ``--ffhq-frac``). Fake:
the four FF++ manipulations and self-blended images made on the fly from the
real faces (and StyleGAN faces with ``--gan-frac``). A fixed validation
split (same for every member, so the ensemble can be validated too) is carved
out of faces/train; temperatures are fitted on it only, and the threshold
follows ``THRESHOLD_RULE`` (or the balanced-accuracy optimum on it).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..config import MODEL_SPECS, ModelSpec
from .augment import augment, resize_to, soften
from .data import CACHE_DIR, DATA_ROOT, FFHQ_GROUP, GAN_GROUPS, load_group, split_train_val, synthetic_split
from .metrics import best_threshold, expected_calibration_error, fit_temperature, log_loss, roc_auc, sigmoid
from .sbi import self_blend

__all__ = ["TrainConfig", "TrainData", "load_train_data", "train", "predict_logits", "member_spec", "RUNS_DIR",
           "ffpp_val_mask", "ffpp_val_auc",
           "THRESHOLD_RULE",
           "export_member", "exported_val_logits", "fit_ensemble"]

RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"
SPLIT_SEED = 1234  # one validation split for every member
REAL_GROUPS = ("train_real_ffpp", "train_real_utkface")
FAKE_GROUPS = ("train_fake_Deepfakes", "train_fake_Face2Face", "train_fake_FaceSwap", "train_fake_NeuralTextures")


@dataclass
class TrainConfig:
    arch: str = "efficientnet_b0"
    input_size: int = 128
    epochs: int = 6
    samples_per_epoch: int = 8000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"  # onecycle | cosine | time (cosine over --max-minutes of wall clock)
    loss: str = "bce"  # bce | focal
    focal_gamma: float = 2.0
    seed: int = 0
    device: str = "auto"
    pretrained: str | None = None
    init: str | None = None  # start from a trained member (best.pt/last.pt or exported .safetensors), head included
    name: str | None = None
    out_dir: str | None = None
    cache_size: int = 160
    crop_margin: float | None = None  # None: the arch's spec
    val_frac: float = 0.1
    val_max_per_group: int = 250
    sbi_frac: float = 0.25
    ffpp_fake_frac: float = 0.25
    utk_frac: float = 0.2  # share of real samples drawn from UTKFace (the rest: FF++ originals)
    # share of real samples drawn from FFHQ photos (half of synthetic/real/ffhq; a quarter joins validation,
    # a quarter stays held out for evaluate): clean, high-resolution real faces. 0 = not used.
    ffhq_frac: float = 0.0
    # share of ALL samples drawn from StyleGAN/StyleGAN2 faces (half of each synthetic/fake group; a quarter
    # joins validation, a quarter stays held out), taken from the two other fake kinds in proportion.
    # Best with --ffhq-frac, so that clean 256 px photos are on both sides. 0 = not used.
    gan_frac: float = 0.0
    aug_strength: float = 1.0
    # share of samples (real and fake alike, self-blends included) that lose most of their detail first
    # (augment.soften: strong blur or a tiny face); 0 = not used, and the other draws stay as they were
    soften_frac: float = 0.0
    workers: int = 1
    threads: int = 2
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    max_minutes: float | None = None  # stop (and checkpoint) after this wall time
    keep_epochs: bool = False  # also keep every epoch's weights in run_dir/epochs/ (for average_checkpoints)
    # the validation figure best.pt is chosen on: val_auc (all of validation) or val_auc_ffpp (FF++ originals
    # against FF++ fakes only: the part that looks like faces/test; UTKFace and FFHQ reals are easy to tell
    # from FF++ video frames by their look alone, which flatters val_auc)
    select_on: str = "val_auc"
    resume: bool = True
    groups_limit: int | None = None  # use only the first N images per group (tests)
    cache_dir: str | None = None
    data_root: str | None = None

    @property
    def run_name(self) -> str:
        return self.name or f"{self.arch}_{self.input_size}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else RUNS_DIR / self.run_name


def member_spec(cfg: TrainConfig, temperature: float = 1.0, threshold: float = 0.5) -> ModelSpec:
    """The spec inference will use for this member (arch defaults + our size/margin)."""
    base = MODEL_SPECS.get(cfg.arch) or ModelSpec(arch=cfg.arch, input_size=cfg.input_size)
    return replace(base, input_size=cfg.input_size,
                   crop_margin=base.crop_margin if cfg.crop_margin is None else cfg.crop_margin,
                   temperature=float(temperature), threshold=float(threshold))


@dataclass
class TrainData:
    """Pools of cached crops (uint8, cache_size) with landmarks, split train/val."""

    real_ffpp: tuple[np.ndarray, np.ndarray]
    real_utk: tuple[np.ndarray, np.ndarray]
    fake: tuple[np.ndarray, np.ndarray]  # images, method index
    val_images: np.ndarray
    val_labels: np.ndarray
    val_groups: list[str]
    counts: dict[str, Any] = field(default_factory=dict)
    real_ffhq: tuple[np.ndarray, np.ndarray] | None = None  # images, landmarks (--ffhq-frac)
    fake_gan: np.ndarray | None = None  # generated faces (--gan-frac)


def load_train_data(cfg: TrainConfig) -> TrainData:
    spec = member_spec(cfg)
    kw = dict(size=cfg.cache_size, margin=spec.crop_margin)
    if cfg.cache_dir:
        kw["cache_dir"] = Path(cfg.cache_dir)
    if cfg.data_root:
        kw["root"] = Path(cfg.data_root)
    pools: dict[str, Any] = {}
    val_im, val_y, val_g = [], [], []
    counts: dict[str, Any] = {}
    for g in REAL_GROUPS + FAKE_GROUPS:
        cs = load_group(g, limit=cfg.groups_limit, **kw)
        n = len(cs) if cfg.groups_limit is None else min(len(cs), cfg.groups_limit)
        tr, va = split_train_val(n, cfg.val_frac, SPLIT_SEED)
        va = va[: cfg.val_max_per_group]
        pools[g] = (cs.images[tr], cs.landmarks[tr])
        val_im.append(cs.images[va])
        val_y += [int(cs.labels[0])] * len(va)
        val_g += [g] * len(va)
        counts[g] = {"train": int(len(tr)), "val": int(len(va)), "no_face": int((~cs.detected[:n]).sum())}

    def synthetic_part(group: str, label: int):
        """The train part of a synthetic/ group; its validation quarter joins the split
        (as train_<label>_<name>), its held-out quarter is only counted."""
        cs = load_group(group, limit=cfg.groups_limit, **kw)
        tr, va, held = synthetic_split(group, len(cs))
        name = group.replace("synthetic_", "train_")  # train_real_ffhq, train_fake_stylegan, ...
        val_im.append(cs.images[va])
        val_y.extend([label] * len(va))
        val_g.extend([name] * len(va))
        counts[name] = {"train": int(len(tr)), "val": int(len(va)), "held_out": int(len(held)),
                        "no_face": int((~cs.detected).sum())}
        return cs.images[tr], cs.landmarks[tr]

    ffhq = synthetic_part(FFHQ_GROUP, 0) if cfg.ffhq_frac > 0 else None
    gan = np.concatenate([synthetic_part(g, 1)[0] for g in GAN_GROUPS]) if cfg.gan_frac > 0 else None
    fake_im = np.concatenate([pools[g][0] for g in FAKE_GROUPS])
    fake_m = np.concatenate([np.full(len(pools[g][0]), i) for i, g in enumerate(FAKE_GROUPS)])
    return TrainData(pools["train_real_ffpp"], pools["train_real_utkface"], (fake_im, fake_m),
                     np.concatenate(val_im), np.asarray(val_y, np.int64), val_g, counts, ffhq, gan)


SELECT_METRICS = ("val_auc", "val_auc_ffpp")


def ffpp_val_mask(groups: Sequence[str]) -> np.ndarray:
    """Which validation crops are FF++ originals or FF++ fakes: the part of the split
    with the same sources and compression on both sides, as on faces/test."""
    g = np.asarray(groups)
    return (g == "train_real_ffpp") | np.isin(g, FAKE_GROUPS)


def ffpp_val_auc(labels: np.ndarray, groups: Sequence[str], scores: np.ndarray) -> float:
    """AUC of the FF++ originals against the FF++ fakes of a validation split (:func:`ffpp_val_mask`)."""
    m = ffpp_val_mask(groups)
    return roc_auc(np.asarray(labels)[m], np.asarray(scores)[m])


def _fake_val_groups(data: TrainData) -> list[str]:
    """The fake groups of the validation split, in order: the FF++ methods, then any others (StyleGAN)."""
    fake = {g for g, y in zip(data.val_groups, data.val_labels) if y == 1}
    return [g for g in FAKE_GROUPS if g in fake] + sorted(fake - set(FAKE_GROUPS))


class _EpochSet:
    """Map-style dataset for one epoch: a fixed plan of (kind, index); each item
    gets its own RNG from (seed, epoch, item), so runs are reproducible with workers."""

    KINDS = ("real_ffpp", "real_utk", "fake_ffpp", "sbi", "real_ffhq", "fake_gan")

    def __init__(self, data: TrainData, cfg: TrainConfig, epoch: int):
        self.d, self.cfg, self.epoch = data, cfg, epoch
        rng = np.random.default_rng([cfg.seed, epoch, 7])
        n = cfg.samples_per_epoch
        real_share = 1.0 - cfg.sbi_frac - cfg.ffpp_fake_frac
        # real pools, also the self-blend sources: FF++, UTKFace, and FFHQ when --ffhq-frac uses it
        self.pools = pools = [data.real_ffpp, data.real_utk] + (
            [data.real_ffhq] if data.real_ffhq is not None and cfg.ffhq_frac > 0 else [])
        ffhq = cfg.ffhq_frac if len(pools) > 2 else 0.0
        p = np.array([real_share * (1 - cfg.utk_frac - ffhq), real_share * cfg.utk_frac, cfg.ffpp_fake_frac,
                      cfg.sbi_frac, real_share * ffhq])
        gan = cfg.gan_frac if data.fake_gan is not None else 0.0
        if gan > 0:  # generated faces take their share from the other fakes, in proportion
            p[2:4] *= 1.0 - gan / (cfg.ffpp_fake_frac + cfg.sbi_frac)
            p = np.r_[p, gan]
        self.kind = rng.choice(len(p), size=n, p=p / p.sum())
        sizes = [len(data.real_ffpp[0]), len(data.real_utk[0]), len(data.fake[0]), 0,
                 len(pools[2][0]) if len(pools) > 2 else 0, len(data.fake_gan) if gan > 0 else 0]
        self.index = np.zeros(n, np.int64)
        self.sbi_src = rng.integers(0, len(pools), n) if len(pools) > 2 else (rng.random(n) >= 0.5).astype(np.int64)
        for k in (0, 1, 2, 4) + ((5,) if gan > 0 else ()):
            m = self.kind == k
            self.index[m] = rng.integers(0, sizes[k], m.sum()) if m.any() else 0
        m = self.kind == 3
        if len(pools) == 2:  # the draws of the runs before FFHQ existed, kept exactly
            self.index[m] = np.where(self.sbi_src[m] == 0, rng.integers(0, sizes[0], m.sum()),
                                     rng.integers(0, sizes[1], m.sum()))
        else:
            for src, pool in enumerate(pools):
                sel = m & (self.sbi_src == src)
                self.index[sel] = rng.integers(0, len(pool[0]), sel.sum())

    def __len__(self) -> int:
        return len(self.kind)

    def __getitem__(self, i: int):
        import torch

        rng = np.random.default_rng([self.cfg.seed, self.epoch, int(i)])
        k, j = int(self.kind[i]), int(self.index[i])
        if k == 0:
            img, y = self.d.real_ffpp[0][j], 0.0
        elif k == 1:
            img, y = self.d.real_utk[0][j], 0.0
        elif k == 2:
            img, y = self.d.fake[0][j], 1.0
        elif k == 4:
            img, y = self.d.real_ffhq[0][j], 0.0
        elif k == 5:
            img, y = self.d.fake_gan[j], 1.0
        else:
            pool = self.pools[int(self.sbi_src[i])]
            img, _ = self_blend(pool[0][j], pool[1][j], rng)
            y = 1.0
        if self.cfg.soften_frac > 0:  # its own RNG: the other draws stay those of a run without it
            r2 = np.random.default_rng([self.cfg.seed, self.epoch, int(i), 11])
            if r2.random() < self.cfg.soften_frac:
                img = soften(img, r2)
        out = augment(img, rng, self.cfg.input_size, self.cfg.aug_strength)
        return torch.from_numpy(out), torch.tensor(y, dtype=torch.float32)


def _normalize(x, spec: ModelSpec, device):
    """uint8 (N, S, S, 3) tensor -> normalised float (N, 3, S, S), channels-last."""
    import torch

    x = x.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def predict_logits(model, images: np.ndarray, spec: ModelSpec, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Raw logits (N,) of uint8 crops (N, S, S, 3), resized to the spec's input size."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch_size):
            batch = np.stack([resize_to(im, spec.input_size) for im in images[s:s + batch_size]])
            x = _normalize(torch.from_numpy(batch), spec, device)
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


def _load_weights(path: str) -> dict:
    """A model state dict from an exported member (.safetensors, fp16 is cast
    back by load_state_dict) or a run checkpoint (best.pt / last.pt / avg.pt)."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    return ck["model"] if isinstance(ck, dict) and "model" in ck else ck


def _one_thread_worker(_worker_id: int) -> None:
    """Each data-loading worker is one process: OpenCV's own thread pool inside it
    would only oversubscribe the cores the other workers use (DataLoader already
    gives each worker one torch thread)."""
    cv2.setNumThreads(1)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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


def train(cfg: TrainConfig, data: TrainData | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) one member. Writes ``run_dir/last.pt`` every epoch,
    ``best.pt`` at the best validation AUC, and ``metrics.jsonl``. Returns the
    final summary (best epoch, its validation metrics, fitted temperature)."""
    import timm
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = _resolve_device(cfg.device)
    cuda = device.startswith("cuda")
    if cuda:  # fixed input size: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = member_spec(cfg)
    data = data or load_train_data(cfg)

    model = timm.create_model(cfg.arch, pretrained=False, num_classes=1, drop_rate=0.2)
    _init_head(model)
    if cfg.pretrained:  # hub-capable machines: start from ImageNet weights, new head
        from safetensors.torch import load_file

        sd = load_file(cfg.pretrained) if cfg.pretrained.endswith(".safetensors") else torch.load(cfg.pretrained, map_location="cpu")
        sd = {k: v for k, v in sd.items() if not k.startswith(model.default_cfg.get("classifier", "classifier"))}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        print(f"pretrained: {len(missing)} missing (head), {len(unexpected)} unexpected keys")
    if cfg.init:  # fine-tune a trained member: every weight, the head included, must fit
        model.load_state_dict(_load_weights(cfg.init), strict=True)
        print(f"initialised from {cfg.init}")
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(cfg.samples_per_epoch / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    elif cfg.schedule == "time":
        if not cfg.max_minutes:
            raise ValueError("--schedule time anneals over --max-minutes; give it")
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)  # lr set by wall clock below
    elif cfg.schedule == "cosine":
        warm = max(1, total // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; use onecycle or cosine")
    loss_fn = _loss_fn(cfg)
    if cfg.select_on not in SELECT_METRICS:
        raise ValueError(f"unknown --select-on {cfg.select_on!r}; use one of {', '.join(SELECT_METRICS)}")

    start_epoch, step, best, prior_s = 0, 0, {"val_auc": -1.0}, 0.0
    last = run_dir / "last.pt"
    if cfg.resume and last.exists():
        ck = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, step, best, prior_s = ck["epoch"] + 1, ck["step"], ck["best"], ck.get("elapsed_s", 0.0)
        print(f"resumed {last} at epoch {start_epoch}, step {step}")
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    t0 = time.time() - prior_s  # elapsed time survives a resume
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    warm_s = 0.05 * budget_s if budget_s else 0.0
    stop = False
    lr_now = cfg.lr
    for epoch in range(start_epoch, cfg.epochs):
        ds = _EpochSet(data, cfg, epoch)
        dl = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                        drop_last=len(ds) >= cfg.batch_size, pin_memory=cuda,
                        persistent_workers=False, worker_init_fn=_one_thread_worker)
        model.train()
        it = dl
        if progress:
            from tqdm import tqdm

            it = tqdm(dl, desc=f"{cfg.run_name} ep {epoch + 1}/{cfg.epochs}", mininterval=10)
        te, n_seen, loss_sum, correct = time.time(), 0, 0.0, 0
        for x, y in it:
            if cfg.schedule == "time":
                # a CPU run's speed is unknown in advance (shared cores): anneal by wall clock
                el = time.time() - t0
                f = min(1.0, el / budget_s)
                scale = min(1.0, (el + 1) / warm_s) * 0.5 * (1 + math.cos(math.pi * f))
                lr_now = cfg.lr * max(scale, 0.01)
                for gr in opt.param_groups:
                    gr["lr"] = lr_now
            x = _normalize(x, spec, device)
            y = y.to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(x).float().view(-1)
                loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if step < total - 1:
                sched.step()
            step += 1
            n_seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            correct += int(((logits > 0).float() == y).sum())
            if progress and hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{loss_sum / n_seen:.3f}", acc=f"{correct / n_seen:.3f}", refresh=False)
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stop = True
            if budget_s is not None and time.time() - t0 > budget_s:
                stop = True
            if stop:
                break
        train_s = time.time() - te
        val_logits = predict_logits(model, data.val_images, spec, device)
        yv = data.val_labels
        temp = fit_temperature(yv, val_logits)
        pv = sigmoid(val_logits / temp)
        rec = {
            # the time schedule sets the rate before each step (the LambdaLR's own step resets it after)
            "epoch": epoch + 1, "step": step, "lr": lr_now if cfg.schedule == "time" else opt.param_groups[0]["lr"],
            "train_loss": loss_sum / max(n_seen, 1), "train_acc": correct / max(n_seen, 1),
            "train_img_per_s": n_seen / max(train_s, 1e-9), "samples": n_seen,
            "val_auc": roc_auc(yv, val_logits), "val_auc_ffpp": ffpp_val_auc(yv, data.val_groups, val_logits),
            "val_log_loss_raw": log_loss(yv, sigmoid(val_logits)),
            "val_temperature": temp, "val_log_loss": log_loss(yv, pv), "val_ece": expected_calibration_error(yv, pv),
            "val_acc": float(((pv >= 0.5) == yv).mean()),
            "val_auc_per_group": {g: roc_auc(np.r_[np.zeros(int(((yv == 0)).sum())), np.ones(int(m.sum()))],
                                             np.r_[val_logits[yv == 0], val_logits[m]])
                                  for g in _fake_val_groups(data) for m in [np.array(data.val_groups) == g]},
            "elapsed_s": time.time() - t0,
        }
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()
                          if k != "val_auc_per_group"}), flush=True)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if rec[cfg.select_on] > best.get(cfg.select_on, -1.0):
            best = {"val_auc": rec["val_auc"], "val_auc_ffpp": rec["val_auc_ffpp"], "epoch": epoch + 1, "step": step}
            torch.save({"model": state, "epoch": epoch, "val_logits": val_logits, "val_labels": yv,
                        "val_groups": data.val_groups, "config": asdict(cfg), "metrics": rec}, run_dir / "best.pt.tmp")
            (run_dir / "best.pt.tmp").replace(run_dir / "best.pt")
        torch.save({"model": state, "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch,
                    "step": step, "best": best, "config": asdict(cfg), "elapsed_s": time.time() - t0},
                   run_dir / "last.pt.tmp")
        (run_dir / "last.pt.tmp").replace(last)
        if cfg.keep_epochs:
            (run_dir / "epochs").mkdir(exist_ok=True)
            torch.save({"model": state, "epoch": epoch + 1}, run_dir / "epochs" / f"ep{epoch + 1:02d}.pt")
        if stop:
            break
    return {"run_dir": str(run_dir), "best": best, "steps": step, "counts": data.counts}


THRESHOLD_RULE = (
    "0.5 on the probability calibrated on validation: 'more likely fake than not', the threshold a reader "
    "assumes. The balanced-accuracy optimum on validation is recorded beside it, not used: it weights the classes "
    "by how the validation split was built (UTKFace reals, self-blended fakes), not by what users upload, and on "
    "a weak model it moves a lot with a few crops.")


def _decision_threshold(labels: np.ndarray, probs: np.ndarray, threshold: float | None) -> float:
    """``threshold`` if given (default 0.5 on calibrated probabilities), else
    the balanced-accuracy optimum on validation."""
    return float(threshold) if threshold is not None else best_threshold(labels, probs)


def load_run(run_dir: str | Path, which: str = "best"):
    """``run_dir/<which>.pt`` as (model in eval mode, its TrainConfig, the checkpoint dict)."""
    import timm
    import torch

    ck = torch.load(Path(run_dir) / f"{which}.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig(**ck["config"])
    model = timm.create_model(cfg.arch, pretrained=False, num_classes=1)
    model.load_state_dict(ck["model"])
    return model.eval(), cfg, ck


def export_member(run_dir: str | Path, out_dir: str | Path, which: str = "best", name: str | None = None,
                  threshold: float | None = 0.5, **card_info: Any) -> Path:
    """Write ``run_dir/<which>.pt`` as fp16 safetensors + card into ``out_dir``,
    with the temperature fitted on the validation split only; the threshold is
    ``threshold`` on the calibrated probability (None: fitted for balanced
    accuracy on validation; see ``THRESHOLD_RULE``)."""
    from .export import save_member

    model, cfg, ck = load_run(run_dir, which)
    if "val_logits" in ck:
        vl, vy = np.asarray(ck["val_logits"]), np.asarray(ck["val_labels"])
    else:
        data = load_train_data(cfg)
        vl, vy = predict_logits(model, data.val_images, member_spec(cfg)), data.val_labels
    # the weights are stored in fp16: calibrate what will be shipped
    temp = fit_temperature(vy, vl)
    pv = sigmoid(vl / temp)
    thr = _decision_threshold(vy, pv, threshold)
    spec = member_spec(cfg, temperature=round(temp, 4), threshold=round(thr, 4))
    val = {"auc": roc_auc(vy, vl), "log_loss": log_loss(vy, pv), "ece": expected_calibration_error(vy, pv),
           "n": int(len(vy)), "n_fake": int(vy.sum()), "epoch": int(ck["epoch"]) + 1,
           "balanced_accuracy_threshold": round(best_threshold(vy, pv), 4)}
    if "val_groups" in ck:  # the FF++-only figure, the part of validation that looks like faces/test
        val["auc_ffpp"] = ffpp_val_auc(vy, ck["val_groups"], vl)
    if threshold is not None:
        card_info.setdefault("threshold_rule", THRESHOLD_RULE)
    if "averaged_epochs" in ck:
        card_info.setdefault("averaged_epochs", ck["averaged_epochs"])
    return save_member(model, spec, out_dir, name=name or cfg.arch, half=True,
                       validation=val, loss=cfg.loss, epochs_trained=int(ck["epoch"]) + 1,
                       train_config=ck["config"], **card_info)


def average_checkpoints(checkpoints: Sequence[str | Path], run_dir: str | Path, bn_samples: int = 2048,
                        out_name: str = "avg") -> Path:
    """Average the weights of several epochs of one run (stochastic weight
    averaging over checkpoints: the late epochs of a noisy run sit around a
    minimum, and their mean can generalise better than any one of them; compare
    its validation figures with ``best.pt``'s before exporting it).

    Float tensors are averaged; batch-norm statistics are then re-estimated
    with ``bn_samples`` training samples (augmented and self-blended like an
    epoch), since the mean of the weights has its own activation statistics.
    Runs on the CPU. Writes ``run_dir/<out_name>.pt`` in ``best.pt``'s format (validation logits
    included) for :func:`export_member` (``which=out_name``) and
    :func:`fit_ensemble`; returns its path."""
    import timm
    import torch
    from torch.utils.data import DataLoader

    run_dir = Path(run_dir)
    if not checkpoints:
        raise ValueError("no checkpoints to average")
    ref = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig(**ref["config"])
    states, epochs = [], []
    for c in checkpoints:
        ck = torch.load(c, map_location="cpu", weights_only=False)
        states.append(ck["model"])
        epochs.append(int(ck["epoch"]))
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            mean[k] = sum(s[k].double() for s in states).div(len(states)).to(v.dtype)
        else:
            mean[k] = states[-1][k].clone()
    model = timm.create_model(cfg.arch, pretrained=False, num_classes=1, drop_rate=0.2)
    model.load_state_dict(mean)
    spec = member_spec(cfg)
    data = load_train_data(cfg)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    ds = _EpochSet(data, replace(cfg, samples_per_epoch=bn_samples), epoch=10_000 + max(epochs))
    model.train()
    with torch.no_grad():
        for x, _ in DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.workers):
            model(_normalize(x, spec, "cpu"))
    vl = predict_logits(model, data.val_images, spec)
    yv = data.val_labels
    temp = fit_temperature(yv, vl)
    metrics = {"val_auc": roc_auc(yv, vl), "val_log_loss": log_loss(yv, sigmoid(vl / temp)),
               "val_ece": expected_calibration_error(yv, sigmoid(vl / temp)), "val_temperature": temp,
               "averaged_epochs": sorted(epochs), "bn_samples": bn_samples}
    out = run_dir / f"{out_name}.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": state, "epoch": max(epochs) - 1, "val_logits": vl, "val_labels": yv,
                "val_groups": data.val_groups, "config": ref["config"], "metrics": metrics,
                "averaged_epochs": sorted(epochs)}, out)
    return out


def exported_val_logits(card) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(validation logits, labels, groups) of an exported member (a :class:`~deepfake_demo.models.ModelCard`),
    for when its run directory is gone: the shipped fp16 weights (sha256-checked, as inference loads them)
    scored on the validation split rebuilt from the card's ``train_config``. Refuses a card without one,
    and a split whose size is not the one the card was validated on."""
    from dataclasses import fields

    from ..models import build_model

    tc = card.info.get("train_config")
    if not isinstance(tc, dict):
        raise ValueError(f"{card.name}: its card has no train_config, so its validation split cannot be rebuilt")
    known = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in tc.items() if k in known})
    data = load_train_data(cfg)
    val = card.info.get("validation") or {}
    y = data.val_labels
    if val.get("n") is not None and (val["n"], val.get("n_fake")) != (len(y), int(y.sum())):
        raise ValueError(f"{card.name}: the rebuilt validation split ({len(y)} crops, {int(y.sum())} fake) is not "
                         f"the one its card was validated on ({val['n']}, {val.get('n_fake')})")
    model = build_model(card, "cpu")
    return predict_logits(model, data.val_images, card.spec), y, list(data.val_groups)


def _checkpoint_val_logits(path: Path, cards: dict, weights_dir: Path):
    """(member name, validation logits, labels, groups or None) from a run directory's best.pt or a
    checkpoint file in its format, after checking that the member's card in ``weights_dir`` was exported
    from exactly this checkpoint."""
    import torch

    ck = torch.load(path if path.is_file() else path / "best.pt", map_location="cpu", weights_only=False)
    name = TrainConfig(**ck["config"]).arch
    if name not in cards:
        raise ValueError(f"{path}: no card {name}.json in {weights_dir}; export the member first")
    y = np.asarray(ck["val_labels"])
    card_val = cards[name].info.get("validation") or {}
    same_auc = abs(card_val.get("auc", -1.0) - roc_auc(y, ck["val_logits"])) <= 1e-9
    if card_val.get("epoch") != int(ck["epoch"]) + 1 or not same_auc:
        raise ValueError(f"{path}: the card {name}.json was not exported from this checkpoint")
    return name, ck["val_logits"], y, ck.get("val_groups")


def fit_ensemble(run_dirs: Sequence[str | Path], weights_dir: str | Path, threshold: float | None = 0.5,
                 **info: Any) -> Path:
    """Fit the ensemble's temperature on the shared validation split, set its
    threshold (see ``THRESHOLD_RULE``) and write ``weights_dir/ensemble.json``.

    Each run's ``best.pt`` (or the checkpoint file given instead of a run
    directory, e.g. :func:`average_checkpoints`' output) holds its validation logits; every member uses the
    same split (``SPLIT_SEED``), so they line up crop by crop. A member whose run is not at hand can be
    named instead by its card name in ``weights_dir`` (e.g. ``legacy_xception``; an existing path of that
    name is read as a run directory first): its validation logits are
    then recomputed from the shipped weights on the split its card's ``train_config`` describes (see
    :func:`exported_val_logits`). The members' logits are divided by the temperatures in their cards (as
    inference does), averaged, and a temperature for that mean is fitted like a member's."""
    from ..models import ENSEMBLE_CARD, read_cards

    weights_dir = Path(weights_dir)
    cards = {c.name: c for c in read_cards(weights_dir)}
    calibrated, labels, names, groups = [], None, [], None
    for rd in run_dirs:  # a run directory (its best.pt), a checkpoint file in best.pt's format, or a card name
        if Path(rd).exists():
            name, vl, y, g = _checkpoint_val_logits(Path(rd), cards, weights_dir)
        elif str(rd) in cards:
            name = str(rd)
            vl, y, g = exported_val_logits(cards[name])
        else:
            raise ValueError(f"{rd}: neither a run directory, a checkpoint file nor a member card in {weights_dir}")
        if name in names:
            raise ValueError(f"{rd}: member {name} given twice")
        if labels is not None and not np.array_equal(labels, y):
            raise ValueError(f"{rd}: validation split differs from the other runs'")
        if groups is not None and g is not None and list(groups) != list(g):
            raise ValueError(f"{rd}: validation split differs from the other runs' (its groups)")
        labels = y
        groups = g if g is not None else groups
        calibrated.append(np.asarray(vl, np.float64) / cards[name].spec.temperature)
        names.append(name)
    z = np.mean(calibrated, axis=0)  # what aggregate.ensemble_probability averages, before its temperature
    raw = sigmoid(z)
    temp = fit_temperature(labels, z)
    p = sigmoid(z / temp)
    thr = _decision_threshold(labels, p, threshold)
    if threshold is not None:
        info.setdefault("threshold_rule", THRESHOLD_RULE)
    card = {
        "kind": "ensemble",
        "members": sorted(names),
        "temperature": round(temp, 4),
        "threshold": round(thr, 4),
        "rule": "p = sigmoid(mean_m(logit_m / T_m) / T_ensemble); FAKE/REAL around the threshold",
        "member_sha256": {n: cards[n].sha256 for n in names},
        "validation": {"auc": roc_auc(labels, p), "log_loss_before": log_loss(labels, raw),
                       "log_loss": log_loss(labels, p), "ece_before": expected_calibration_error(labels, raw),
                       "ece": expected_calibration_error(labels, p), "n": int(len(labels)),
                       "n_fake": int(labels.sum()), "balanced_accuracy_threshold": round(best_threshold(labels, p), 4)},
        **info,
    }
    if groups is not None:
        card["validation"]["auc_ffpp"] = ffpp_val_auc(labels, groups, p)
    out = weights_dir / ENSEMBLE_CARD
    out.write_text(json.dumps(card, indent=2, default=float) + "\n")
    return out
