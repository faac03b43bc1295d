"""Training pieces: Self-Blended Images, augmentations, metrics, calibration,
and a 2-step training run on a few real crops that exports loadable weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_demo.training.augment import augment, jpeg, resize_to
from deepfake_demo.training.data import canonical_landmarks
from deepfake_demo.training.metrics import (
    best_threshold,
    confusion,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    roc_auc,
    sigmoid,
    summarize,
)
from deepfake_demo.training.sbi import face_hull_mask, self_blend

from conftest import need_data


def _face_like(size: int = 128, seed: int = 0) -> np.ndarray:
    """A textured RGB uint8 image (a real face is not needed to test the blend)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 2 % 256, yy * 2 % 256, (xx + yy) % 256], -1).astype(np.float32)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_self_blend_changes_only_inside_its_mask(seed):
    img = _face_like()
    lm = canonical_landmarks(128)
    out, mask = self_blend(img, lm, np.random.default_rng(seed))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert mask.shape == img.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    outside = mask == 0
    assert outside.any(), "the mask covers the whole crop: the blend would have no boundary"
    assert np.array_equal(out[outside], img[outside])
    inside = mask > 0.2
    assert inside.any()
    assert np.abs(out[inside].astype(int) - img[inside]).mean() > 1.0
    # the mask's centre is the face (between eyes and mouth), its corners are background
    assert mask[70, 64] > 0 and mask[0, 0] == 0 and mask[-1, -1] == 0


def test_face_mask_is_blurred_not_binary():
    m = face_hull_mask((128, 128), canonical_landmarks(128), np.random.default_rng(3))
    soft = (m > 0.02) & (m < 0.98)
    assert soft.sum() > 0.05 * (m > 0.02).sum(), "mask edge is hard: SBI needs a soft blending boundary"
    assert m.max() == pytest.approx(1.0, abs=1e-5)


def _oval(size: int, cx: float, cy: float, rx: float, ry: float, k: int = 36) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    return np.stack([cx + rx * np.sin(t), cy - ry * np.cos(t)], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_dense_outline_decides_the_mask_and_a_missing_one_falls_back_to_5_points(seed):
    """--sbi-landmarks mesh: the 5 points followed by a face outline build the hull from the outline
    (a face off to the left is masked there, whatever the 5 points say); a NaN outline (no mesh found)
    gives exactly the 5-point mask."""
    lm5 = canonical_landmarks(128)
    left = _oval(128, 34, 64, 22, 30)
    m = face_hull_mask((128, 128), np.concatenate([lm5, left]), np.random.default_rng(seed))
    assert m[64, 34] > 0.5 and m[64, 110] == 0, "the mask does not follow the outline"
    nan = np.full_like(left, np.nan)
    a = face_hull_mask((128, 128), np.concatenate([lm5, nan]), np.random.default_rng(seed))
    b = face_hull_mask((128, 128), lm5, np.random.default_rng(seed))
    assert np.array_equal(a, b)
    out, mask = self_blend(_face_like(), np.concatenate([lm5, left]), np.random.default_rng(seed))
    outside = mask == 0
    assert np.array_equal(out[outside], _face_like()[outside]) and mask[:, 100:].max() == 0


def test_mesh_landmarks_join_the_real_pools_and_are_refused_with_a_command_when_missing(tmp_path):
    need_data("faces", "train", "real", "ffpp")
    need_data("faces", "train", "real", "utkface")
    from deepfake_demo.training.config import REAL_GROUPS, TrainConfig
    from deepfake_demo.training.data import cache_path
    from deepfake_demo.training.dataset import load_train_data
    from deepfake_demo.training.mesh import FACE_OVAL, mesh_path
    cache = tmp_path / "cache"
    cfg = TrainConfig(input_size=64, groups_limit=6, cache_dir=str(cache), sbi_landmarks="mesh")
    load_train_data(TrainConfig(input_size=64, groups_limit=6, cache_dir=str(cache)))  # builds the crops
    with pytest.raises(FileNotFoundError, match="deepfake_demo.training.mesh train_real_ffpp"):
        load_train_data(cfg)
    for g in REAL_GROUPS:  # outlines as the mesh tool writes them; one crop of each without a mesh
        oval = np.stack([_oval(160, 80, 80, 40, 50, len(FACE_OVAL))] * 6)
        oval[2] = np.nan
        np.savez(mesh_path(cache_path(g, 160, 0.3, cache, 6)), oval=oval, found=np.isfinite(oval[:, 0, 0]))
    data = load_train_data(cfg)
    assert data.real_ffpp[1].shape[1:] == (5 + len(FACE_OVAL), 2)
    assert data.counts["mesh_found"] == {g: 5 for g in REAL_GROUPS}
    assert np.array_equal(data.real_ffpp[0], load_train_data(TrainConfig(
        input_size=64, groups_limit=6, cache_dir=str(cache))).real_ffpp[0])


def test_ffpp_drop_twins_keeps_validation_videos_frames_out_of_training_and_leaves_validation_alone(tmp_path):
    """--ffpp-drop-twins: the FF++ originals whose thumbnail correlates at least that much with a validation
    original (a frame of its video) leave the training pool, exactly those; validation, the other groups and
    the draws' pools are otherwise those of a run without it; a correlation outside 0-1 is refused."""
    need_data("faces", "train", "real", "ffpp")
    need_data("faces", "train", "real", "utkface")
    need_data("faces", "train", "fake", "Deepfakes")
    from deepfake_demo.training.config import FAKE_GROUPS, TrainConfig
    from deepfake_demo.training.data import nearest_similarity, thumbnails
    from deepfake_demo.training.dataset import load_train_data

    kw = dict(input_size=64, groups_limit=40, val_frac=0.25, cache_dir=str(tmp_path / "cache"))
    base = load_train_data(TrainConfig(**kw))
    val_orig = base.val_images[np.asarray(base.val_groups) == "train_real_ffpp"]
    sim = nearest_similarity(base.real_ffpp[0], val_orig)
    t = float(np.quantile(sim, 0.75))  # a cut that some of these 40 real crops reach, whatever their videos
    data = load_train_data(TrainConfig(**kw, ffpp_drop_twins=t))
    keep = sim < t
    assert 0 < (~keep).sum() < len(sim) and data.counts["train_real_ffpp"]["dropped_twins"] == int((~keep).sum())
    assert np.array_equal(data.real_ffpp[0], base.real_ffpp[0][keep])
    assert np.array_equal(data.real_ffpp[1], base.real_ffpp[1][keep])
    assert np.array_equal(data.val_images, base.val_images) and data.val_groups == base.val_groups
    assert np.array_equal(data.real_utk[0], base.real_utk[0]) and np.array_equal(data.fake[0], base.fake[0])
    # --ffpp-drop-fake-twins: the fakes at the cut leave too (made from a validation original's video),
    # group by group; the originals and validation are those of the run without it
    both = load_train_data(TrainConfig(**kw, ffpp_drop_twins=t, ffpp_drop_fake_twins=True))
    parts, start, left = [], 0, 0
    for g in FAKE_GROUPS:
        n = base.counts[g]["train"]
        part = base.fake[0][start:start + n]
        near = nearest_similarity(part, val_orig) >= t
        parts.append(part[~near])
        left += int(near.sum())
        assert both.counts[g].get("dropped_twins", 0) == int(near.sum())
        start += n
    assert left > 0 and np.array_equal(both.fake[0], np.concatenate(parts))
    assert np.array_equal(both.real_ffpp[0], data.real_ffpp[0]) and np.array_equal(both.val_images, base.val_images)
    with pytest.raises(ValueError, match="needs --ffpp-drop-twins"):
        TrainConfig(ffpp_drop_fake_twins=True)
    # the measure itself: a picture correlates 1 with itself, a frame is closer to its slightly moved self
    # than to another person's face
    a, b = base.real_ffpp[0][0], base.real_utk[0][0]
    moved = np.roll(a, 3, axis=1)
    t3 = thumbnails(np.stack([a, moved, b]))
    assert t3[0] @ t3[0] == pytest.approx(1.0, abs=1e-4) and t3[0] @ t3[1] > t3[0] @ t3[2]
    with pytest.raises(ValueError, match="ffpp-drop-twins"):
        TrainConfig(ffpp_drop_twins=1.5)


def test_select_on_untwinned_cross_auc_leaves_the_split_twins_out_of_the_ffpp_part(tmp_path):
    """--select-on val_auc_cross_untwinned (a run started from weights that trained on the random split):
    each epoch's figure is the cross-source AUC without the FF++ validation originals that have a twin in
    the random split's training part, best.pt is chosen on it, and it is another figure than
    val_auc_cross when some originals are twins."""
    need_data("faces", "train", "real", "ffpp")
    need_data("faces", "train", "fake", "Deepfakes")
    import torch

    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import cross_val_auc, untwinned_val_mask
    from deepfake_demo.training.loop import train
    cfg = TrainConfig(arch="resnet10t", input_size=64, epochs=2, samples_per_epoch=16, batch_size=8, workers=0,
                      threads=2, groups_limit=40, val_frac=0.25, cache_dir=str(tmp_path / "cache"),
                      out_dir=str(tmp_path / "run"), device="cpu", select_on="val_auc_cross_untwinned")
    summary = train(cfg, progress=False)
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    keep = untwinned_val_mask(cfg, best["val_groups"], 0.93)
    groups = [g for g, k in zip(best["val_groups"], keep) if k]
    assert 0 < (~keep).sum() < (np.asarray(best["val_groups"]) == "train_real_ffpp").sum()
    want = cross_val_auc(best["val_labels"][keep], groups, np.asarray(best["val_logits"])[keep])
    assert best["metrics"]["val_auc_cross_untwinned"] == pytest.approx(want)
    assert summary["best"]["val_auc_cross_untwinned"] == max(r["val_auc_cross_untwinned"] for r in recs)
    assert want != pytest.approx(cross_val_auc(best["val_labels"], best["val_groups"], best["val_logits"]))


def test_self_blend_refuses_non_uint8():
    with pytest.raises(ValueError):
        self_blend(_face_like().astype(np.float32), canonical_landmarks(128), np.random.default_rng(0))


@pytest.mark.parametrize("seed", range(8))
def test_augment_keeps_shape_and_dtype(seed):
    img = _face_like(160, seed)
    out = augment(img, np.random.default_rng(seed), 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]


def test_augment_strength_zero_is_resize_or_flip():
    img = _face_like(160)
    for seed in range(4):
        out = augment(img, np.random.default_rng(seed), 128, strength=0.0)
        plain = resize_to(img, 128)
        flipped = resize_to(np.ascontiguousarray(img[:, ::-1]), 128)
        assert np.array_equal(out, plain) or np.array_equal(out, flipped)


def test_jpeg_recompression_is_lossy_but_close():
    img = _face_like(96)
    low = jpeg(img, 30)
    assert low.shape == img.shape and low.dtype == np.uint8
    err = np.abs(low.astype(int) - img).mean()
    assert 1.0 < err < 40.0


def test_auc_known_values():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc(y, [0.1, 0.8, 0.2, 0.9]) == 0.75
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_ece_zero_when_calibrated_and_large_when_not():
    # 10 crops at 0.2 with 2 fakes, 10 at 0.7 with 7 fakes: perfectly calibrated bins
    p = np.r_[np.full(10, 0.2), np.full(10, 0.7)]
    y = np.r_[np.ones(2), np.zeros(8), np.ones(7), np.zeros(3)]
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    # always says 0.99 while half are fake: ECE 0.49
    assert expected_calibration_error(np.r_[np.ones(5), np.zeros(5)], np.full(10, 0.99)) == pytest.approx(0.49)


def test_confusion_and_summary():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.2, 0.9, 0.4])
    assert confusion(y, p, 0.5) == {"tp": 1, "fp": 1, "tn": 2, "fn": 1}
    s = summarize(y, p, 0.5)
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["log_loss"] == pytest.approx(log_loss(y, p))


def test_temperature_fit_repairs_overconfidence():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 1.5, 4000)
    y = (rng.random(4000) < sigmoid(true_logit)).astype(int)
    over = 4.0 * true_logit  # a model 4x too sure of itself
    t = fit_temperature(y, over)
    assert 3.0 < t < 5.3
    assert log_loss(y, sigmoid(over / t)) < log_loss(y, sigmoid(over)) - 0.05
    assert expected_calibration_error(y, sigmoid(over / t)) < 0.03


def test_best_threshold_separates_classes():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.1, 0.3, 0.35, 0.6, 0.9])
    assert 0.3 < best_threshold(y, p) <= 0.35


def test_card_speed_is_the_runs_median_not_the_chosen_epochs(tmp_path):
    # an epoch that was paused or shared the CPU must not become the card's training speed
    from deepfake_demo.training.calibrate import run_img_per_s
    speeds = [25.1, 24.9, 11.9, 25.4, 25.0]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i, "train_img_per_s": v}) + "\n"
                                                    for i, v in enumerate(speeds)))
    chosen = {"metrics": {"train_img_per_s": 11.9}}
    assert run_img_per_s(tmp_path, chosen) == 25.0
    # a restart in the same folder logs epochs again: the last line of an epoch counts; junk lines do not
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write("not json\n[1, 2]\n" + json.dumps({"epoch": 2, "train_img_per_s": 24.8}) + "\n"
                + json.dumps({"epoch": 5, "train_img_per_s": True}) + "\n")
    assert run_img_per_s(tmp_path, chosen) == 25.0  # median of 25.1, 24.9, 24.8, 25.4, 25.0
    assert run_img_per_s(tmp_path / "no_run", chosen) == 11.9
    assert run_img_per_s(tmp_path / "no_run", {}) is None


def test_two_step_training_exports_loadable_member(tmp_path):
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.loop import train
    from deepfake_demo.training.calibrate import export_member
    cfg = TrainConfig(arch="efficientnet_b0", input_size=64, epochs=1, samples_per_epoch=16, batch_size=8,
                      max_steps=2, workers=0, threads=2, groups_limit=5, val_frac=0.4, val_max_per_group=2,
                      cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"), device="cpu")
    summary = train(cfg, progress=False)
    assert summary["steps"] == 2
    run = tmp_path / "run"
    assert (run / "last.pt").exists() and (run / "best.pt").exists()
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 2 and np.isfinite(rec["train_loss"]) and rec["val_temperature"] > 0
    assert 0 <= rec["val_auc_ffpp"] <= 1
    # the cache holds crops cut by the inference crop function, with landmarks inside the crop
    cache = np.load(next((tmp_path / "cache").glob("train_real_ffpp_*.npz")))
    assert cache["images"].shape[1:] == (160, 160, 3)
    assert ((cache["landmarks"] > 0) & (cache["landmarks"] < 160)).all()

    card = export_member(run, tmp_path / "weights", reproduce="pytest")
    info = json.loads(card.read_text())
    assert info["input_size"] == 64 and info["temperature"] > 0 and info["reproduce"] == "pytest"
    assert info["validation"]["auc_ffpp"] == pytest.approx(rec["val_auc_ffpp"])
    assert info["train_img_per_s"] == round(rec["train_img_per_s"], 1)  # the run's median; here one epoch
    ens = load_ensemble(tmp_path / "weights")  # strict load + sha256 check, as inference does
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    out = ens.score_member("efficientnet_b0", crops, with_cam=False)
    assert out.probs.shape == (2,) and np.all((out.probs > 0) & (out.probs < 1))

    # a second member on the same validation split, then the ensemble's own calibration
    from dataclasses import replace as _replace

    from deepfake_demo.training.calibrate import fit_ensemble
    cfg2 = _replace(cfg, arch="resnet10t", out_dir=str(tmp_path / "run2"))
    train(cfg2, progress=False)
    export_member(tmp_path / "run2", tmp_path / "weights", reproduce="pytest")
    ens_card = json.loads(fit_ensemble([run, tmp_path / "run2"], tmp_path / "weights").read_text())
    assert ens_card["members"] == ["efficientnet_b0", "resnet10t"] and "arch" not in ens_card
    assert ens_card["temperature"] > 0 and 0 < ens_card["threshold"] < 1
    assert 0 <= ens_card["validation"]["auc_ffpp"] <= 1
    ens = load_ensemble(tmp_path / "weights")
    assert ens.names == ["efficientnet_b0", "resnet10t"]  # ensemble.json is not read as a member
    assert ens.temperature() == ens_card["temperature"] and ens.threshold() == ens_card["threshold"]
    assert ens.temperature(["resnet10t"]) == 1.0  # fitted for both members, not for one alone
    # a member whose run is gone, named by its card: its validation logits come from the shipped fp16
    # weights on the split rebuilt from the card's train_config, crop for crop the run's own
    import torch

    from deepfake_demo.models import read_cards
    from deepfake_demo.training.calibrate import exported_val_logits
    ck2 = torch.load(tmp_path / "run2" / "best.pt", map_location="cpu", weights_only=False)
    vl, vy, vg = exported_val_logits(read_cards(tmp_path / "weights", ["resnet10t"])[0])
    assert np.array_equal(vy, ck2["val_labels"]) and vg == list(ck2["val_groups"])
    assert np.allclose(vl, ck2["val_logits"], atol=0.02) and np.ptp(vl) > 0.02
    mixed = json.loads(fit_ensemble([run, "resnet10t"], tmp_path / "weights").read_text())
    assert mixed["members"] == ens_card["members"]
    assert mixed["temperature"] == pytest.approx(ens_card["temperature"], rel=0.02)
    # fitted without the FF++ validation originals whose video the random split's training holds: exactly
    # those leave the fit (weights, temperature, the card's validation count), the rest is the same split
    from deepfake_demo.training.calibrate import calibration
    from deepfake_demo.training.dataset import ffpp_val_twin_similarity, untwinned_val_mask
    sim = ffpp_val_twin_similarity(cfg)
    cut = float(np.max(sim))  # with 5 crops a group no pair reaches 0.93; the closest pair is a twin here
    assert cut > 0
    g2 = np.asarray(ck2["val_groups"])
    keep = untwinned_val_mask(cfg, g2, cut)  # exactly the FF++ originals at the cut leave, in split order
    assert np.array_equal(np.nonzero(~keep)[0], np.nonzero(g2 == "train_real_ffpp")[0][sim >= cut])
    untw = json.loads(fit_ensemble([run, tmp_path / "run2"], tmp_path / "weights", drop_twins=cut).read_text())
    assert untw["fitted_without_twins"] == {"cut": cut, "ffpp_originals_left_out": int((~keep).sum())}
    assert untw["validation"]["n"] == ens_card["validation"]["n"] - int((~keep).sum()) >= 1
    assert untw["validation"]["n_fake"] == ens_card["validation"]["n_fake"]  # no fake leaves
    alone = calibration(ck2["val_labels"][keep], ck2["val_logits"][keep] / read_cards(
        tmp_path / "weights", ["resnet10t"])[0].spec.temperature, list(g2[keep]))
    assert untw["validation"]["members_alone"]["resnet10t"]["auc"] == pytest.approx(alone["auc"])
    assert "fitted_without_twins" not in ens_card
    # members named by their cards alone: the twins are found on the first card's own split
    by_card = json.loads(fit_ensemble(["efficientnet_b0", "resnet10t"], tmp_path / "weights",
                                      drop_twins=cut).read_text())
    assert by_card["fitted_without_twins"] == untw["fitted_without_twins"]
    # a member trained on a larger crop cache than the split's is scored on the crops it trained on, crop
    # for crop its run's validation, not on 160 px crops blown up
    from deepfake_demo.training.loop import predict_logits
    cfg3 = _replace(cfg, arch="resnet10t", input_size=192, cache_size=192, out_dir=str(tmp_path / "run3"))
    train(cfg3, progress=False)
    export_member(tmp_path / "run3", tmp_path / "weights3", reproduce="pytest")
    card3 = read_cards(tmp_path / "weights3", ["resnet10t"])[0]
    ck3 = torch.load(tmp_path / "run3" / "best.pt", map_location="cpu", weights_only=False)
    vl3, vy3, vg3 = exported_val_logits(card3, cfg)  # cfg: the 160 px cache
    assert np.array_equal(vy3, ck2["val_labels"]) and vg3 == list(ck2["val_groups"])
    assert np.allclose(vl3, ck3["val_logits"], atol=0.02)
    from deepfake_demo.models import build_model
    from deepfake_demo.training.dataset import load_train_data
    model3 = build_model(card3, "cpu")
    own = predict_logits(model3, load_train_data(cfg3).val_images, card3.spec)
    blown_up = predict_logits(model3, load_train_data(cfg).val_images, card3.spec)  # what it was scored on before
    assert np.allclose(vl3, own, rtol=0, atol=1e-6) and not np.allclose(vl3, blown_up, rtol=0, atol=1e-6)
    # a transform (ship_check.py --degrade) reaches every crop before scoring, and only then
    dark = exported_val_logits(card3, cfg, transform=lambda im: (im // 2).astype(np.uint8))[0]
    assert np.allclose(dark, predict_logits(model3, load_train_data(cfg3).val_images // 2, card3.spec), rtol=0, atol=1e-6)
    assert not np.allclose(dark, vl3, rtol=0, atol=1e-3)
    # and the other way round: on the 192 px member's split, the 160 px-cache member keeps its own crops
    vl2 = exported_val_logits(read_cards(tmp_path / "weights", ["resnet10t"])[0], cfg3)[0]
    assert np.allclose(vl2, vl, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="fit-drop-twins"):
        fit_ensemble([run, tmp_path / "run2"], tmp_path / "weights", drop_twins=1.5)
    with pytest.raises(ValueError, match="neither a run directory"):
        fit_ensemble([run, "no_such_member"], tmp_path / "weights")
    with pytest.raises(ValueError, match="given twice"):
        fit_ensemble(["resnet10t", tmp_path / "run2"], tmp_path / "weights")
    # an ensemble card fitted on other weights is refused, not silently applied
    from deepfake_demo.models import WeightsError

    stale = json.loads((tmp_path / "weights" / "ensemble.json").read_text())
    stale["member_sha256"]["resnet10t"] = "0" * 64
    (tmp_path / "weights" / "ensemble.json").write_text(json.dumps(stale))
    with pytest.raises(WeightsError, match="refit"):
        load_ensemble(tmp_path / "weights")


def test_ffpp_validation_auc_leaves_out_the_other_real_sources():
    from deepfake_demo.training.dataset import ffpp_val_auc
    from deepfake_demo.train import parse_config

    groups = ["train_real_ffpp"] * 2 + ["train_real_utkface"] * 2 + ["train_fake_Deepfakes", "train_fake_FaceSwap"]
    labels = np.array([0, 0, 0, 0, 1, 1])
    # UTKFace reals are easy (lowest scores); the FF++ originals straddle the two fakes
    scores = np.array([0.5, 0.95, -3.0, -2.0, 0.6, 0.9])
    assert roc_auc(labels, scores) == pytest.approx(6 / 8)
    assert ffpp_val_auc(labels, groups, scores) == pytest.approx(2 / 4)
    cfg, _ = parse_config(["--select-on", "val_auc_ffpp"])
    assert cfg.select_on == "val_auc_ffpp"
    with pytest.raises(SystemExit):
        parse_config(["--select-on", "val_loss"])


def test_keep_epochs_average_and_export(tmp_path):
    """--keep-epochs snapshots, their weight average with re-estimated batch-norm
    statistics, exported and fitted into an ensemble like any best.pt."""
    need_data("faces", "train", "real", "ffpp")
    import torch

    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.averaging import average_checkpoints
    from deepfake_demo.training.calibrate import export_member, fit_ensemble
    from deepfake_demo.training.loop import train
    cfg = TrainConfig(arch="resnet10t", input_size=64, epochs=2, samples_per_epoch=16, batch_size=8, workers=0,
                      threads=2, groups_limit=5, val_frac=0.4, val_max_per_group=2, keep_epochs=True,
                      cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "run"), device="cpu")
    train(cfg, progress=False)
    run = tmp_path / "run"
    snaps = sorted((run / "epochs").glob("ep*.pt"))
    assert [p.name for p in snaps] == ["ep01.pt", "ep02.pt"]
    out = average_checkpoints(snaps, run, bn_samples=16)
    a, b, avg = (torch.load(p, map_location="cpu", weights_only=False) for p in (*snaps, out))
    w = "conv1.0.weight"
    assert torch.allclose(avg["model"][w], (a["model"][w] + b["model"][w]) / 2, atol=1e-6)
    assert not torch.equal(a["model"][w], b["model"][w])  # the two epochs differ, so the mean is new
    bn = "bn1.running_var"
    assert not torch.allclose(avg["model"][bn], torch.ones_like(avg["model"][bn]))  # re-estimated, not reset
    assert not torch.allclose(avg["model"][bn], (a["model"][bn] + b["model"][bn]) / 2)  # nor just averaged
    assert avg["averaged_epochs"] == [1, 2] and len(avg["val_logits"]) == len(avg["val_labels"])

    card = json.loads(export_member(run, tmp_path / "weights", which="avg", reproduce="pytest").read_text())
    assert card["averaged_epochs"] == [1, 2] and card["validation"]["epoch"] == 2
    fit_ensemble([out], tmp_path / "weights")
    assert load_ensemble(tmp_path / "weights").names == ["resnet10t"]
    # a card whose validation figures are not this checkpoint's is refused
    card_path = tmp_path / "weights" / "resnet10t.json"
    card["validation"]["auc"] += 0.01
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="not exported from this checkpoint"):
        fit_ensemble([out], tmp_path / "weights")


def test_pack_round_trip_keeps_crops_and_metadata(tmp_path):
    """Packing for a GPU machine keeps landmarks, flags and paths exactly and the
    pixels within JPEG q95 error; unpacked files load as the cache did."""
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.training import pack
    from deepfake_demo.training.data import cache_path, load_group

    cache = tmp_path / "cache"
    orig = load_group("train_real_ffpp", cache_dir=cache, limit=4)
    src = cache_path("train_real_ffpp", 160, 0.3, cache, 4)
    info = pack.pack_group(src, tmp_path / "pack" / src.name, quality=95)
    assert info["n"] == 4 and info["packed_mb"] < info["raw_mb"] / 3
    out_cache = tmp_path / "unpacked"
    assert pack.unpack_group(tmp_path / "pack" / src.name, out_cache / src.name) == 4
    back = load_group("train_real_ffpp", cache_dir=out_cache, limit=4, build=False)
    assert back.paths == orig.paths
    np.testing.assert_array_equal(back.landmarks, orig.landmarks)
    np.testing.assert_array_equal(back.detected, orig.detected)
    err = np.abs(back.images.astype(np.int16) - orig.images.astype(np.int16))
    assert back.images.shape == orig.images.shape and err.mean() < 2.0 and err.max() < 64


def test_pack_cli_refuses_missing_cache(tmp_path, capsys):
    from deepfake_demo.training import pack

    with pytest.raises(SystemExit) as exc:
        pack.main(["--out", str(tmp_path / "p"), "--cache-dir", str(tmp_path / "none"), "train_real_ffpp"])
    assert exc.value.code == 2 and "missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pack.main(["--unpack", str(tmp_path / "empty")])


def test_crop_cli_names_the_groups_when_given_a_folder(capsys):
    from deepfake_demo.training import data

    with pytest.raises(SystemExit) as exc:  # a folder path, not a group name: a message, not a KeyError
        data.main(["faces/train/real/ffpp"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown group(s) faces/train/real/ffpp" in err and "train_real_ffpp" in err


def test_unpack_refuses_a_file_that_is_not_a_pack(tmp_path, capsys):
    from deepfake_demo.training import pack

    (tmp_path / "packs").mkdir()
    np.savez(tmp_path / "packs" / "train_real_ffpp_s160_m0.3.npz", images=np.zeros((1, 4, 4, 3), np.uint8))
    np.savez(tmp_path / "packs" / "half.tmp.npz", jpeg=np.zeros(3, np.uint8))  # an interrupted pack: skipped
    with pytest.raises(SystemExit) as exc:
        pack.main(["--unpack", str(tmp_path / "packs"), "--cache-dir", str(tmp_path / "cache")])
    assert exc.value.code == 2 and "not a pack" in capsys.readouterr().err


def test_ffhq_split_is_disjoint_stable_and_keeps_a_held_out_quarter():
    from deepfake_demo.training.data import ffhq_split

    tr, va, held = ffhq_split(509)
    assert len(tr) == 254 and len(va) == 128 and len(held) == 127
    assert not (set(tr) & set(va) or set(tr) & set(held) or set(va) & set(held))
    assert sorted(np.r_[tr, va, held].tolist()) == list(range(509))
    again = ffhq_split(509)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, held), again))


def test_ffhq_photos_join_training_and_validation_but_not_the_held_out_part(tmp_path):
    """--ffhq-frac: FFHQ photos become a real pool (and a self-blend source),
    a quarter joins validation, and evaluate scores only the quarter no member saw."""
    need_data("synthetic", "real", "ffhq")
    need_data("faces", "train", "real", "ffpp")
    from types import SimpleNamespace

    from deepfake_demo.evaluate import held_out_subsets
    from deepfake_demo.training.data import FFHQ_GROUP, ffhq_split, list_group
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data
    cfg = TrainConfig(input_size=64, samples_per_epoch=400, groups_limit=8, ffhq_frac=0.3, val_frac=0.25,
                      cache_dir=str(tmp_path / "cache"))
    data = load_train_data(cfg)
    tr, va, held = ffhq_split(8)
    assert data.real_ffhq is not None and len(data.real_ffhq[0]) == len(tr)
    assert data.val_groups.count("train_real_ffhq") == len(va) and data.counts["train_real_ffhq"]["held_out"] == len(held)
    ds = EpochSet(data, cfg, 0)
    assert (ds.kind == 4).sum() > 40 and (ds.index[ds.kind == 4] < len(tr)).all()  # ~0.5 real x 0.3 of 400
    sbi = ds.kind == 3
    assert set(ds.sbi_src[sbi].tolist()) == {0, 1, 2}  # self-blends from FF++, UTKFace and FFHQ faces
    x, y = ds[int(np.flatnonzero(ds.kind == 4)[0])]
    assert tuple(x.shape) == (64, 64, 3) and float(y) == 0.0
    # without --ffhq-frac nothing changes, and evaluate keeps every FFHQ photo
    assert load_train_data(TrainConfig(groups_limit=8, cache_dir=str(tmp_path / "cache"))).real_ffhq is None
    card = lambda f: SimpleNamespace(info={"train_config": {"ffhq_frac": f}})  # noqa: E731
    assert held_out_subsets([card(0.0), card(None)]) == {}
    sub = held_out_subsets([card(0.0), card(0.2)])
    assert np.array_equal(sub[FFHQ_GROUP], ffhq_split(len(list_group(FFHQ_GROUP)))[2])


def test_gan_faces_join_training_and_validation_but_not_the_held_out_part(tmp_path):
    """--gan-frac: half of each StyleGAN group becomes a fake pool, a quarter joins
    validation (and gets its own per-group AUC), and evaluate scores only the
    quarter no member saw; without the flag the plan is draw for draw the old one."""
    need_data("synthetic", "fake", "stylegan")
    need_data("faces", "train", "real", "ffpp")
    from types import SimpleNamespace

    from deepfake_demo.evaluate import held_out_subsets
    from deepfake_demo.training.data import FFHQ_GROUP, GAN_GROUPS, list_group, synthetic_split
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, fake_val_groups, load_train_data
    cfg = TrainConfig(input_size=64, samples_per_epoch=400, groups_limit=8, ffhq_frac=0.2, gan_frac=0.2,
                      val_frac=0.25, cache_dir=str(tmp_path / "cache"))
    data = load_train_data(cfg)
    splits = {g: synthetic_split(g, 8) for g in GAN_GROUPS}
    assert len(data.fake_gan) == sum(len(s[0]) for s in splits.values())
    for g, (tr, va, held) in splits.items():
        name = g.replace("synthetic_", "train_")
        assert data.val_groups.count(name) == len(va) and data.counts[name]["held_out"] == len(held)
    assert fake_val_groups(data)[-2:] == ["train_fake_stylegan", "train_fake_stylegan2"]
    ds = EpochSet(data, cfg, 0)
    gan = ds.kind == 5
    assert 50 < gan.sum() < 110 and (ds.index[gan] < len(data.fake_gan)).all()  # 0.2 of 400
    # the fake half keeps its size: generated faces replace FF++ fakes and self-blends in proportion
    assert abs(np.isin(ds.kind, (2, 3, 5)).mean() - 0.5) < 0.08
    x, y = ds[int(np.flatnonzero(gan)[0])]
    assert tuple(x.shape) == (64, 64, 3) and float(y) == 1.0
    # the StyleGAN and FFHQ shuffles differ, so no image's fate is tied to another group's
    assert not np.array_equal(synthetic_split(GAN_GROUPS[0], 100)[2], synthetic_split(FFHQ_GROUP, 100)[2])
    # without --gan-frac: no pool, and a GAN pool that is there but unused changes no draw
    plain = TrainConfig(input_size=64, samples_per_epoch=400, groups_limit=8, ffhq_frac=0.2, val_frac=0.25,
                        cache_dir=str(tmp_path / "cache"))
    d0 = load_train_data(plain)
    assert d0.fake_gan is None and not any("stylegan" in g for g in d0.val_groups)
    assert (EpochSet(d0, plain, 3).kind == EpochSet(data, plain, 3).kind).all()
    card = lambda f: SimpleNamespace(info={"train_config": {"gan_frac": f}})  # noqa: E731
    assert held_out_subsets([card(0.0)]) == {}
    sub = held_out_subsets([card(0.0), card(0.1)])
    assert set(sub) == set(GAN_GROUPS)
    for g in GAN_GROUPS:
        assert np.array_equal(sub[g], synthetic_split(g, len(list_group(g)))[2])


def test_init_weights_load_from_a_run_or_an_export(tmp_path):
    """--init takes a run checkpoint or an exported member (fp16 safetensors),
    the head included, and a member of another architecture is refused."""
    import timm
    import torch
    from safetensors.torch import save_file

    from deepfake_demo.training.loop import load_weights
    m = timm.create_model("resnet10t", pretrained=False, num_classes=1)
    sd = m.state_dict()
    torch.save({"model": sd, "epoch": 0}, tmp_path / "best.pt")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    for src in (tmp_path / "best.pt", tmp_path / "m.safetensors"):
        m2 = timm.create_model("resnet10t", pretrained=False, num_classes=1)
        m2.load_state_dict(load_weights(str(src)), strict=True)
        assert torch.allclose(m2.fc.weight, m.fc.weight, atol=1e-3)
    with pytest.raises(RuntimeError):
        timm.create_model("efficientnet_b0", pretrained=False, num_classes=1).load_state_dict(
            load_weights(str(tmp_path / "best.pt")), strict=True)


def test_soften_frac_softens_that_share_of_samples_and_changes_no_other_draw(tmp_path):
    """--soften-frac: a share of samples, real and fake alike, lose most of their
    detail before augmentation; every other sample is byte for byte what it was."""
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.faces import face_detail as _detail  # the measure the app's soft-face warning uses
    from deepfake_demo.training.augment import soften
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data
    base = dict(input_size=96, samples_per_epoch=120, groups_limit=8, val_frac=0.25, cache_dir=str(tmp_path / "cache"))
    data = load_train_data(TrainConfig(**base))
    for seed in range(6):  # on real face crops, each draw of soften removes most of the detail
        face = data.real_ffpp[0][seed % len(data.real_ffpp[0])]
        out = soften(face, np.random.default_rng(seed))
        assert out.shape == face.shape and out.dtype == np.uint8
        assert _detail(out) < 0.75 * _detail(face)
    _, changed = _changes(EpochSet(data, TrainConfig(**base), 2), EpochSet(data, TrainConfig(**base, soften_frac=0.5), 2))
    assert 40 <= len(changed) <= 80  # about half of 120
    assert np.mean([_detail(b) < _detail(a) for a, b, _ in changed]) > 0.9  # less detail than the draw unsoftened
    assert {y for *_, y in changed} == {0.0, 1.0}  # real and fake samples alike


def _changes(plain, other):
    """Walk two EpochSets that differ only by one pre-augmentation option: the same draws and labels.
    Returns (every sample's label, [(plain image, other image, label)] for the samples that changed)."""
    assert (plain.kind == other.kind).all() and (plain.index == other.index).all()
    labels, changed = [], []
    for i in range(len(plain)):
        (a, ya), (b, yb) = plain[i], other[i]
        assert float(ya) == float(yb)
        labels.append(float(ya))
        if not np.array_equal(a.numpy(), b.numpy()):
            changed.append((a.numpy(), b.numpy(), float(yb)))
    return labels, changed


def _real_only_changes(plain, other):
    """:func:`_changes` for a reals-only option: no fake changed. Returns (number of real samples,
    [(plain image, other image)] for the samples that changed)."""
    labels, changed = _changes(plain, other)
    assert all(y == 0.0 for *_, y in changed)  # never a fake
    return labels.count(0.0), [(a, b) for a, b, _ in changed]


def test_soften_real_frac_softens_only_real_samples_and_changes_no_other_draw(tmp_path):
    """--soften-real-frac: that share of the real samples, and no fake, lose some detail
    (less than --soften-frac takes) before augmentation; every other sample is byte for
    byte what it was."""
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.faces import face_detail as _detail
    from deepfake_demo.training.augment import mild_soften, soften
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data
    base = dict(input_size=96, samples_per_epoch=160, groups_limit=8, val_frac=0.25, cache_dir=str(tmp_path / "cache"))
    data = load_train_data(TrainConfig(**base))
    for seed in range(6):  # softer than the crop, not as soft as --soften-frac's draw
        face = data.real_ffpp[0][seed % len(data.real_ffpp[0])]
        out = mild_soften(face, np.random.default_rng(seed))
        assert out.shape == face.shape and out.dtype == np.uint8
        assert _detail(soften(face, np.random.default_rng(seed))) < _detail(out) < 0.9 * _detail(face)
    plain, soft = EpochSet(data, TrainConfig(**base), 2), EpochSet(data, TrainConfig(**base, soften_real_frac=0.5), 2)
    reals, pairs = _real_only_changes(plain, soft)
    changed = [_detail(b) < _detail(a) for a, b in pairs]
    assert reals >= 40 and 0.3 * reals <= len(changed) <= 0.7 * reals  # about half of the reals
    assert np.mean(changed) > 0.8  # and those carry less detail than the same draw unsoftened


def test_h264_round_trip_loses_more_at_higher_crf_and_is_deterministic():
    """augment.h264 really encodes and decodes an H.264 frame: same shape, odd sides too, more loss at a
    higher crf, the same bytes every time."""
    from skimage import data as skdata

    from deepfake_demo.training.augment import h264
    img = np.ascontiguousarray(skdata.astronaut()[100:261, 150:311])  # 161 x 161: odd sides
    low, high = h264(img, 18), h264(img, 34)
    assert low.shape == img.shape and low.dtype == np.uint8
    err = lambda a: float(np.abs(a.astype(float) - img).mean())  # noqa: E731
    assert 0 < err(low) < err(high)
    assert np.array_equal(low, h264(img, 18))


def test_recompress_real_frac_recompresses_only_real_samples_and_changes_no_other_draw(tmp_path):
    """--recompress-real-frac: that share of the real samples, and no fake, go through one more H.264
    encode before augmentation; every other sample is byte for byte what it was."""
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.training.augment import recompress
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data
    base = dict(input_size=96, samples_per_epoch=160, groups_limit=8, val_frac=0.25, aug_strength=0.0,
                cache_dir=str(tmp_path / "cache"))
    data = load_train_data(TrainConfig(**base))
    face = data.real_ffpp[0][0]
    assert not np.array_equal(recompress(face, np.random.default_rng(0)), face)
    plain, redone = EpochSet(data, TrainConfig(**base), 2), EpochSet(data, TrainConfig(**base, recompress_real_frac=0.5), 2)
    reals, pairs = _real_only_changes(plain, redone)
    assert reals >= 40 and 0.3 * reals <= len(pairs) <= 0.7 * reals  # about half of the reals


def test_recompress_frac_recompresses_real_and_fake_alike_and_changes_no_other_draw(tmp_path):
    """--recompress-frac: that share of all samples, real and fake alike, go through one more H.264 encode
    at crf 28-42, heavier than --recompress-real-frac's 18-30; every other sample is byte for byte what it was."""
    need_data("faces", "train", "real", "ffpp")
    from deepfake_demo.training.augment import heavy_recompress, recompress
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data
    base = dict(input_size=96, samples_per_epoch=120, groups_limit=8, val_frac=0.25, aug_strength=0.0,
                cache_dir=str(tmp_path / "cache"))
    data = load_train_data(TrainConfig(**base))
    face = data.real_ffpp[0][0]
    err = lambda out: float(np.abs(out.astype(float) - face).mean())  # noqa: E731
    heavy = [err(heavy_recompress(face, np.random.default_rng(s))) for s in range(6)]
    light = [err(recompress(face, np.random.default_rng(s))) for s in range(6)]
    assert min(heavy) > 0 and np.mean(heavy) > np.mean(light)
    _, changed = _changes(EpochSet(data, TrainConfig(**base), 2), EpochSet(data, TrainConfig(**base, recompress_frac=0.5), 2))
    assert 40 <= len(changed) <= 80  # about half of 120
    assert {y for *_, y in changed} == {0.0, 1.0}  # real and fake samples alike


def test_mixed_mode_cuts_blends_from_both_outlines_and_other_modes_keep_theirs():
    from deepfake_demo.training.sbi import blend_landmarks
    lm = np.concatenate([canonical_landmarks(128), _oval(128, 64, 64, 40, 50)])
    rng = np.random.default_rng(0)
    sizes = [len(blend_landmarks(lm, "mixed", rng)) for _ in range(200)]
    assert set(sizes) == {5, 41} and 70 < sizes.count(5) < 130
    assert all(len(blend_landmarks(lm, "mesh", rng)) == 41 for _ in range(20))
    assert len(blend_landmarks(lm[:5], "mixed", rng)) == 5  # no outline: nothing to choose


def test_hold_out_leaves_a_source_out_of_training_and_validation(tmp_path):
    """--hold-out: the leave-one-source-out runs. An FF++ manipulation leaves the fake pool and the
    validation split (so no checkpoint is chosen on it) while the other three stay; dfdc and generated
    switch their pools off whatever the fractions say; anything else is refused by name."""
    need_data("faces", "train", "fake", "FaceSwap")
    from deepfake_demo.training.config import FAKE_GROUPS, HOLD_OUT_SOURCES, TrainConfig
    from deepfake_demo.training.dataset import EpochSet, load_train_data

    kw = dict(input_size=64, samples_per_epoch=200, groups_limit=8, val_frac=0.25, cache_dir=str(tmp_path / "cache"))
    full, held = load_train_data(TrainConfig(**kw)), load_train_data(TrainConfig(hold_out="FaceSwap", **kw))
    swap = FAKE_GROUPS.index("train_fake_FaceSwap")
    assert swap in set(full.fake[1]) and swap not in set(held.fake[1])
    assert set(held.fake[1]) == set(full.fake[1]) - {swap}
    assert "train_fake_FaceSwap" in full.val_groups and "train_fake_FaceSwap" not in held.val_groups
    assert len(held.fake[0]) == len(full.fake[0]) - int((full.fake[1] == swap).sum())
    ds = EpochSet(held, TrainConfig(hold_out="FaceSwap", **kw), 0)
    ffpp_fakes = ds.kind == 2
    assert ffpp_fakes.any() and (held.fake[1][ds.index[ffpp_fakes]] != swap).all()
    assert TrainConfig(hold_out="dfdc", dfdc_frac=0.3).dfdc_frac == 0.0
    gen = TrainConfig(hold_out="generated", ffhq_frac=0.2, gan_frac=0.1)
    assert gen.ffhq_frac == 0.0 and gen.gan_frac == 0.0
    assert set(HOLD_OUT_SOURCES) == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "dfdc", "generated"}
    with pytest.raises(ValueError, match="not a source"):
        TrainConfig(hold_out="Midjourney")


def test_loso_runs_hold_out_each_source_once_and_score_it_on_its_own_test_data():
    """The leave-one-source-out plan: a reference run and one run per source, each holding out exactly
    its source; every source's test data is held out of every run (faces/test, DFDC's and synthetic's
    held-out parts) and has both classes."""
    need_data("faces", "test", "real", "ffpp")
    need_data("dfdc_faces", "real")
    need_data("synthetic", "real", "ffhq")
    from deepfake_demo.evaluate import dfdc_held_out
    from deepfake_demo.training.config import HOLD_OUT_SOURCES
    from deepfake_demo.training.loso import REFERENCE, run_commands, test_sets

    cmds = run_commands(20)
    assert set(cmds) == {REFERENCE, *HOLD_OUT_SOURCES}
    assert "--hold-out" not in cmds[REFERENCE]
    for src in HOLD_OUT_SOURCES:
        c = cmds[src]
        assert c[c.index("--hold-out") + 1] == src and c.count("--hold-out") == 1
    # the Xception's recipe: the same plan and schedule from its own ImageNet start, in its own folder
    from deepfake_demo.training.loso import RECIPES, loso_file
    xc = run_commands(20, member="legacy_xception")
    assert set(xc) == set(cmds) and xc["dfdc"][xc["dfdc"].index("--hold-out") + 1] == "dfdc"
    assert xc[REFERENCE][xc[REFERENCE].index("--arch") + 1] == "legacy_xception" and "--cpu-bf16" in xc[REFERENCE]
    assert "legacy_xception_imagenet" in xc[REFERENCE][xc[REFERENCE].index("--pretrained") + 1]
    assert "legacy_xception" in xc[REFERENCE][xc[REFERENCE].index("--out-dir") + 1]
    assert cmds[REFERENCE][cmds[REFERENCE].index("--out-dir") + 1] != xc[REFERENCE][xc[REFERENCE].index("--out-dir") + 1]
    for flag in ("--epochs", "--samples-per-epoch", "--seed", "--schedule", "--gan-frac", "--dfdc-frac", "--input-size"):
        a = RECIPES["tf_efficientnet_lite0"]
        for other in ("legacy_xception", "tf_efficientnet_lite2"):
            b = RECIPES[other]
            assert a[a.index(flag) + 1] == b[b.index(flag) + 1], (flag, other)
    assert loso_file("tf_efficientnet_lite0") == "loso.json" and loso_file("legacy_xception") == "loso_legacy_xception.json"
    # the shipped EfficientNet's recipe: its own ImageNet start and folder, the same plan and sample budget
    l2 = run_commands(20, member="tf_efficientnet_lite2")
    assert set(l2) == set(cmds) and "--cpu-bf16" not in l2[REFERENCE]
    assert "tf_efficientnet_lite2_imagenet" in l2[REFERENCE][l2[REFERENCE].index("--pretrained") + 1]
    assert l2["generated"][l2["generated"].index("--hold-out") + 1] == "generated"
    assert loso_file("tf_efficientnet_lite2") == "loso_tf_efficientnet_lite2.json"
    sets = test_sets()
    assert set(sets) == set(HOLD_OUT_SOURCES)
    for src, (reals, fakes, subsets) in sets.items():
        assert reals and fakes and not any(g.startswith("train_") for g in reals + fakes), src
    assert sets["FaceSwap"][:2] == (("test_real_ffpp",), ("test_fake_FaceSwap",))
    held = dfdc_held_out()
    assert all(np.array_equal(sets["dfdc"][2][g], held[g]) for g in held)


def test_teacher_gives_the_calibrated_probability_inference_gives_and_steers_the_student(tmp_path):
    """--teacher: the soft target is the teacher member's calibrated probability, exactly what inference
    computes for the same crops (resized when the student's input size differs); a run that follows it
    (weight 1) learns other weights than one that follows the labels from the same start and seed, and
    records its teacher; a card at another margin, a missing card and a weight outside 0-1 are refused."""
    need_data("faces", "train", "real", "ffpp")
    from dataclasses import replace as _replace

    import torch

    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.calibrate import export_member
    from deepfake_demo.training.config import TrainConfig, member_spec
    from deepfake_demo.training.distill import load_teacher
    from deepfake_demo.training.loop import train

    base = TrainConfig(arch="resnet10t", input_size=64, epochs=1, samples_per_epoch=16, batch_size=8, max_steps=2,
                       workers=0, threads=2, groups_limit=5, val_frac=0.4, val_max_per_group=2,
                       cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "t"), device="cpu")
    train(base, progress=False)
    card = export_member(tmp_path / "t", tmp_path / "weights", reproduce="pytest")

    teacher = load_teacher(card, member_spec(base))
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    want = load_ensemble(tmp_path / "weights").score_member("resnet10t", crops, with_cam=False).probs
    got = teacher.probability(torch.from_numpy(crops), "cpu").numpy()
    assert np.allclose(got, want, atol=1e-5) and teacher.temperature == json.loads(card.read_text())["temperature"]
    # a student at twice the input size: the teacher sees the same crops, brought back to its own size
    up = teacher.probability(torch.from_numpy(np.repeat(np.repeat(crops, 2, 1), 2, 2)), "cpu").numpy()
    assert np.allclose(up, want, atol=1e-4)

    # students from the same start and seed: labels only, or the teacher only
    student = _replace(base, arch="efficientnet_b0", max_steps=6, epochs=1, samples_per_epoch=48, lr=5e-3)
    runs = {}
    for name, extra in {"labels": {}, "teacher": {"teacher": str(card), "distill_weight": 1.0}}.items():
        cfg = _replace(student, out_dir=str(tmp_path / name), **extra)
        train(cfg, progress=False)
        runs[name] = torch.load(tmp_path / name / "last.pt", map_location="cpu", weights_only=False)
    assert runs["teacher"]["config"]["teacher"] == str(card)
    assert not torch.equal(runs["teacher"]["model"]["classifier.weight"], runs["labels"]["model"]["classifier.weight"])

    with pytest.raises(ValueError, match="margin"):
        load_teacher(card, member_spec(_replace(base, crop_margin=0.1)))
    with pytest.raises(ValueError, match="no model card"):
        load_teacher(tmp_path / "weights" / "nothing.json", member_spec(base))
    with pytest.raises(ValueError, match="distill-weight"):
        TrainConfig(distill_weight=1.5)
