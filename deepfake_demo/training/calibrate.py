"""From a member's validation logits to what ships: the one calibration summary (:func:`calibration`),
the member export (:func:`export_member`) and the ensemble fit (:func:`fit_ensemble`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .config import TrainConfig, member_spec
from .dataset import cross_val_auc, ffpp_val_auc, load_train_data, source_val_aucs, untwinned_val_mask
from .metrics import best_threshold, expected_calibration_error, fit_temperature, log_loss, roc_auc, sigmoid

__all__ = ["THRESHOLD_RULE", "calibration", "export_member", "exported_val_logits", "fit_ensemble",
           "fit_member_weights"]

THRESHOLD_RULE = (
    "0.5 on the probability calibrated on validation: 'more likely fake than not', the threshold a reader "
    "assumes. The balanced-accuracy optimum on validation is recorded beside it, not used: it weights the classes "
    "by how the validation split was built (UTKFace reals, self-blended fakes), not by what users upload, and on "
    "a weak model it moves a lot with a few crops.")


def calibration(labels: np.ndarray, logits: np.ndarray, groups: Sequence[str] | None = None) -> dict[str, Any]:
    """The temperature fitted on (labels, logits) of a validation split and the figures around it: AUC,
    log-loss and ECE before and after, the balanced-accuracy threshold, and with ``groups`` the AUC on its
    FF++ part, per source (:func:`~.dataset.source_val_aucs`) and their mean (``auc_cross``)."""
    y, z = np.asarray(labels), np.asarray(logits, np.float64)
    temp = fit_temperature(y, z)
    p = sigmoid(z / temp)
    out: dict[str, Any] = {
        "temperature": temp, "auc": roc_auc(y, z), "log_loss_before": log_loss(y, sigmoid(z)), "log_loss": log_loss(y, p),
        "ece_before": expected_calibration_error(y, sigmoid(z)), "ece": expected_calibration_error(y, p),
        "acc": float(((p >= 0.5) == y).mean()) if len(y) else float("nan"),
        "n": int(len(y)), "n_fake": int(y.sum()), "balanced_accuracy_threshold": round(best_threshold(y, p), 4)}
    if groups is not None:
        out["auc_ffpp"] = ffpp_val_auc(y, groups, z)
        out["auc_by_source"] = source_val_aucs(y, groups, z)
        out["auc_cross"] = cross_val_auc(y, groups, z)
    return out


def _decision_threshold(labels: np.ndarray, probs: np.ndarray, threshold: float | None) -> float:
    """``threshold`` if given (default 0.5 on calibrated probabilities), else
    the balanced-accuracy optimum on validation."""
    return float(threshold) if threshold is not None else best_threshold(labels, probs)


def run_img_per_s(run_dir: str | Path, checkpoint: dict | None = None) -> float | None:
    """Training speed of a run for its card: the median ``train_img_per_s`` over the run's epochs
    (:func:`~deepfake_demo.training.loop.read_metrics`), so that one epoch slowed by other work on the
    machine, or paused, does not become the card's figure; else the checkpoint's own epoch figure;
    else None."""
    from .loop import read_metrics

    def speed(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    speeds = [v for v in (speed(rec.get("train_img_per_s")) for rec in read_metrics(run_dir)) if v is not None]
    if speeds:
        return round(float(np.median(speeds)), 1)
    v = speed(((checkpoint or {}).get("metrics") or {}).get("train_img_per_s"))
    return round(v, 1) if v is not None else None


def export_member(run_dir: str | Path, out_dir: str | Path, which: str = "best", name: str | None = None,
                  threshold: float | None = 0.5, **card_info: Any) -> Path:
    """Write ``run_dir/<which>.pt`` as fp16 safetensors + card into ``out_dir``,
    with the temperature fitted on the validation split only; the threshold is
    ``threshold`` on the calibrated probability (None: fitted for balanced
    accuracy on validation; see ``THRESHOLD_RULE``)."""
    from .export import save_member
    from .loop import load_run, predict_logits

    model, cfg, checkpoint = load_run(run_dir, which)
    if "val_logits" in checkpoint:
        val_logits, val_labels = np.asarray(checkpoint["val_logits"]), np.asarray(checkpoint["val_labels"])
        val_groups = checkpoint.get("val_groups")
    else:
        data = load_train_data(cfg)
        val_logits = predict_logits(model, data.val_images, member_spec(cfg))
        val_labels, val_groups = data.val_labels, data.val_groups
    cal = calibration(val_labels, val_logits, val_groups)
    temp = cal.pop("temperature")
    thr = _decision_threshold(val_labels, sigmoid(val_logits / temp), threshold)
    spec = member_spec(cfg, temperature=round(temp, 4), threshold=round(thr, 4))
    for k in ("log_loss_before", "ece_before", "acc"):
        cal.pop(k)
    val = {**cal, "epoch": int(checkpoint["epoch"]) + 1}
    if threshold is not None:
        card_info.setdefault("threshold_rule", THRESHOLD_RULE)
    if "averaged_epochs" in checkpoint:
        card_info.setdefault("averaged_epochs", checkpoint["averaged_epochs"])
    speed = run_img_per_s(run_dir, checkpoint)
    if speed is not None:
        card_info.setdefault("train_img_per_s", speed)
    return save_member(model, spec, out_dir, name=name or cfg.arch, half=True,
                       validation=val, loss=cfg.loss, epochs_trained=int(checkpoint["epoch"]) + 1,
                       train_config=checkpoint["config"], **card_info)


def exported_val_logits(card, cfg: TrainConfig | None = None, transform: Callable[[np.ndarray], np.ndarray] | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(validation logits, labels, groups) of an exported member (a :class:`~deepfake_demo.models.ModelCard`),
    for when its run directory is gone: the shipped fp16 weights (sha256-checked, as inference loads them)
    scored on the validation split rebuilt from the card's ``train_config`` (or on ``cfg``'s split, to score
    an older member on a newer member's larger split). Refuses a card without one, and a split rebuilt from
    the card whose size is not the one the card was validated on. Whatever split ``cfg`` names, the member
    is scored on crops cut at the size it trained and was validated on (its card's ``train_config``
    ``cache_size``; without one, at least its input size): the same faces, detected once, so a 224 px
    member is not judged on 160 px crops blown up, nor a 160 px member on 224 px crops shrunk. ``transform``
    (a robustness check): applied to each validation crop (RGB uint8 HWC in and out) before scoring."""
    from dataclasses import replace

    from ..models import build_model
    from .loop import predict_logits

    tc = card.info.get("train_config")
    if cfg is None:
        if not isinstance(tc, dict):
            raise ValueError(f"{card.name}: its card has no train_config, so its validation split cannot be rebuilt")
        cfg = TrainConfig.from_dict(tc)
        check = True
    else:
        check = False
    own = tc.get("cache_size") if isinstance(tc, dict) else None
    size = int(own) if own else max(cfg.cache_size, card.spec.input_size)
    if size != cfg.cache_size:
        cfg = replace(cfg, cache_size=size)
    data = load_train_data(cfg)
    val = card.info.get("validation") or {}
    y = data.val_labels
    if check and val.get("n") is not None and (val["n"], val.get("n_fake")) != (len(y), int(y.sum())):
        raise ValueError(f"{card.name}: the rebuilt validation split ({len(y)} crops, {int(y.sum())} fake) is not "
                         f"the one its card was validated on ({val['n']}, {val.get('n_fake')})")
    model = build_model(card, "cpu")
    images = data.val_images if transform is None else np.stack([transform(im) for im in data.val_images])
    return predict_logits(model, images, card.spec), y, list(data.val_groups)


def _checkpoint_val_logits(path: Path, cards: dict, weights_dir: Path):
    """(member name, validation logits, labels, groups or None, its TrainConfig) from a run directory's
    best.pt or a checkpoint file in its format, after checking that the member's card in ``weights_dir``
    was exported from exactly this checkpoint."""
    import torch

    checkpoint = torch.load(path if path.is_file() else path / "best.pt", map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(checkpoint["config"])
    name = cfg.arch
    if name not in cards:
        raise ValueError(f"{path}: no card {name}.json in {weights_dir}; export the member first")
    val_labels = np.asarray(checkpoint["val_labels"])
    card_val = cards[name].info.get("validation") or {}
    same_auc = abs(card_val.get("auc", -1.0) - roc_auc(val_labels, checkpoint["val_logits"])) <= 1e-9
    if card_val.get("epoch") != int(checkpoint["epoch"]) + 1 or not same_auc:
        raise ValueError(f"{path}: the card {name}.json was not exported from this checkpoint")
    return name, checkpoint["val_logits"], val_labels, checkpoint.get("val_groups"), cfg


def fit_member_weights(labels: np.ndarray, calibrated: Sequence[np.ndarray], steps: int = 2000) -> np.ndarray:
    """Non-negative weights, summing to 1, of the members' calibrated logits (M arrays of (N,)) that
    minimise the validation log-loss of ``sigmoid(s * sum_m w_m z_m)`` with the scale ``s`` free (it
    becomes the ensemble temperature): a weak member counts for what it adds. No bias term: a bias would
    write the validation split's share of fakes into every verdict. Projected gradient descent on the
    simplex, from equal weights."""
    z = np.stack([np.asarray(c, np.float64) for c in calibrated])  # (M, N)
    y = np.asarray(labels, np.float64)
    m = len(z)
    if m == 1:
        return np.ones(1)
    # free parameters: a = s * w (a >= 0); the loss is convex in a
    a = np.full(m, 1.0 / m)
    lr = 1.0 / max(float(np.mean(np.sum(z * z, axis=0))), 1e-6)
    for _ in range(steps):
        p = sigmoid(a @ z)
        grad = z @ (p - y) / len(y)
        a = np.maximum(a - lr * grad, 0.0)
    if a.sum() <= 0:
        return np.full(m, 1.0 / m)
    return a / a.sum()


def fit_ensemble(run_dirs: Sequence[str | Path], weights_dir: str | Path, threshold: float | None = 0.5,
                 equal_weights: bool = False, drop_twins: float = 0.0, **info: Any) -> Path:
    """Fit the ensemble's member weights and temperature on the shared validation split, set its
    threshold (see ``THRESHOLD_RULE``) and write ``weights_dir/ensemble.json``.

    Each run's ``best.pt`` (or the checkpoint file given instead of a run directory, e.g.
    :func:`~.averaging.average_checkpoints`' output) holds its validation logits. A member whose run is
    not at hand can be named instead by its card name in ``weights_dir`` (e.g. ``legacy_xception``; an
    existing path of that name is read as a run directory first): its validation logits are then
    recomputed from the shipped weights, on the split of the first member given as a run (so an older
    member is scored on a newer member's larger split, crop for crop), else on the split its own card
    describes (:func:`exported_val_logits`). The members' logits are divided by the temperatures in their
    cards (as inference does), combined with weights fitted on validation (:func:`fit_member_weights`;
    ``equal_weights``: the plain mean), and a temperature for that combination is fitted like a member's.

    ``drop_twins`` (a correlation, 0 = off): weights, temperature and the card's validation figures leave
    out the FF++ validation originals whose video a member trained on the random split has seen
    (:func:`~.dataset.untwinned_val_mask`): on those, such a member looks surer than it is on new videos,
    and the fit would favour it for that."""
    from ..cards import read_cards, write_ensemble_card

    weights_dir = Path(weights_dir)
    cards = {c.name: c for c in read_cards(weights_dir)}
    found: dict[str, tuple] = {}
    order: list[str] = []
    split_cfg: TrainConfig | None = None
    for rd in run_dirs:  # runs first: the first run's split is the split card-named members are scored on
        if Path(rd).exists():
            name, val_logits, val_labels, val_groups, cfg = _checkpoint_val_logits(Path(rd), cards, weights_dir)
            split_cfg = split_cfg or cfg
        elif str(rd) in cards:
            name, val_logits, val_labels, val_groups = str(rd), None, None, None
        else:
            raise ValueError(f"{rd}: neither a run directory, a checkpoint file nor a member card in {weights_dir}")
        if name in found:
            raise ValueError(f"{rd}: member {name} given twice")
        found[name] = (val_logits, val_labels, val_groups)
        order.append(name)
    for name in order:
        if found[name][0] is None:
            found[name] = exported_val_logits(cards[name], split_cfg)
    calibrated, labels, groups = [], None, None
    for name in order:
        val_logits, val_labels, val_groups = found[name]
        if labels is not None and not np.array_equal(labels, val_labels):
            raise ValueError(f"{name}: validation split differs from the other members'")
        if groups is not None and val_groups is not None and list(groups) != list(val_groups):
            raise ValueError(f"{name}: validation split differs from the other members' (its groups)")
        labels = np.asarray(val_labels)
        groups = val_groups if val_groups is not None else groups
        calibrated.append(np.asarray(val_logits, np.float64) / cards[name].spec.temperature)
    if drop_twins:
        if groups is None:
            raise ValueError("--fit-drop-twins: no member's checkpoint names its validation groups")
        if not 0 < drop_twins <= 1:
            raise ValueError(f"--fit-drop-twins {drop_twins:g}: a correlation, between 0 and 1 (0 = off)")
        # the split the members were scored on: the first run's, else the first card's own
        twin_cfg = split_cfg or TrainConfig.from_dict(cards[order[0]].info.get("train_config") or {})
        keep = untwinned_val_mask(twin_cfg, groups, drop_twins)
        labels, groups = labels[keep], [g for g, k in zip(groups, keep) if k]
        calibrated = [c[keep] for c in calibrated]
        info["fitted_without_twins"] = {"cut": drop_twins, "ffpp_originals_left_out": int((~keep).sum())}
    w = np.full(len(order), 1.0 / len(order)) if equal_weights else fit_member_weights(labels, calibrated)
    w = np.round(w, 4) / np.round(w, 4).sum()  # the weights the card gives, as inference will use them
    z = np.tensordot(w, np.stack(calibrated), axes=1)  # what aggregate.ensemble_probability combines
    cal = calibration(labels, z, groups)
    temp = cal.pop("temperature")
    p = sigmoid(z / temp)
    thr = _decision_threshold(labels, p, threshold)
    if threshold is not None:
        info.setdefault("threshold_rule", THRESHOLD_RULE)
    cal.pop("acc")
    cal["auc"] = roc_auc(labels, p)
    cal["members_alone"] = {n: calibration(labels, c, groups) for n, c in zip(order, calibrated)}
    for v in cal["members_alone"].values():
        for k in ("temperature", "log_loss_before", "ece_before", "acc", "balanced_accuracy_threshold", "n", "n_fake"):
            v.pop(k, None)
    return write_ensemble_card(weights_dir, [cards[n] for n in order], dict(zip(order, w)), temp, thr,
                               validation=cal, **info)
