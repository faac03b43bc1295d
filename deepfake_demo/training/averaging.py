"""Stochastic weight averaging over the saved epochs of one run (``--keep-epochs``, ``--average``)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .calibrate import calibration
from .config import TrainConfig, member_spec
from .dataset import EpochSet, load_train_data
from .loop import predict_logits

__all__ = ["average_checkpoints"]


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

    from ..models import to_model_input

    run_dir = Path(run_dir)
    if not checkpoints:
        raise ValueError("no checkpoints to average")
    ref = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(ref["config"])
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
    ds = EpochSet(data, replace(cfg, samples_per_epoch=bn_samples), epoch=10_000 + max(epochs))
    model.train()
    with torch.no_grad():
        for x, _ in DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.workers):
            model(to_model_input(x, spec, "cpu"))
    vl = predict_logits(model, data.val_images, spec)
    yv = data.val_labels
    cal = calibration(yv, vl, data.val_groups)
    metrics = {"val_auc": cal["auc"], "val_log_loss": cal["log_loss"], "val_ece": cal["ece"],
               "val_temperature": cal["temperature"], "averaged_epochs": sorted(epochs), "bn_samples": bn_samples}
    out = run_dir / f"{out_name}.pt"
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"model": state, "epoch": max(epochs) - 1, "val_logits": vl, "val_labels": yv,
                "val_groups": data.val_groups, "config": ref["config"], "metrics": metrics,
                "averaged_epochs": sorted(epochs)}, out)
    return out
