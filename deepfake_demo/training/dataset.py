"""The training data: pools of cached crops split train/validation (:func:`load_train_data`), the plan of
one epoch's samples by named kind (:class:`EpochSet`), and the validation figures by source."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .augment import augment, heavy_recompress, mild_soften, recompress, soften
from .config import FAKE_GROUPS, REAL_GROUPS, SPLIT_SEED, TrainConfig, member_spec
from .data import (CACHE_DIR, DFDC_GROUPS, FFHQ_GROUP, GAN_GROUPS, cache_path, dfdc_split, load_group,
                   nearest_similarity, split_train_val, synthetic_split)
from .mesh import load_oval
from .metrics import roc_auc
from .sbi import blend_landmarks, self_blend

__all__ = ["Kind", "TrainData", "load_train_data", "EpochSet", "ffpp_val_mask", "ffpp_val_auc",
           "source_val_aucs", "cross_val_auc", "fake_val_groups", "ffpp_val_twin_similarity", "untwinned_val_mask",
           "TWIN_CUT"]

TWIN_CUT = 0.93  # notes/experiments/2026-12-06-real-fake-leak/: above 95 % of different-video pairs


class Kind(IntEnum):
    """What one training sample is. The numbers are the plan's (and old runs') codes."""

    REAL_FFPP = 0
    REAL_UTK = 1
    FAKE_FFPP = 2
    SBI = 3  # a real face self-blended: fake
    REAL_FFHQ = 4
    FAKE_GAN = 5
    REAL_DFDC = 6
    FAKE_DFDC = 7


REAL_KINDS = (Kind.REAL_FFPP, Kind.REAL_UTK, Kind.REAL_FFHQ, Kind.REAL_DFDC)


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
    real_dfdc: tuple[np.ndarray, np.ndarray] | None = None  # images, landmarks (--dfdc-frac)
    fake_dfdc: np.ndarray | None = None


def group_split(n: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of one faces/train group of ``n`` crops: the random split every member shares
    (``SPLIT_SEED``), validation capped at ``val_max_per_group``; before ``--ffpp-drop-twins``."""
    tr, va = split_train_val(n, cfg.val_frac, SPLIT_SEED)
    return tr, va[: cfg.val_max_per_group]


def _load_kw(cfg: TrainConfig) -> dict[str, Any]:
    """The keywords of :func:`~.data.load_group` for ``cfg``: crop cache size, margin, folders."""
    kw: dict[str, Any] = dict(size=cfg.cache_size, margin=member_spec(cfg).crop_margin)
    if cfg.cache_dir:
        kw["cache_dir"] = Path(cfg.cache_dir)
    if cfg.data_root:
        kw["root"] = Path(cfg.data_root)
    return kw


def load_train_data(cfg: TrainConfig) -> TrainData:
    """The pools and the validation split ``cfg`` asks for. The FF++/UTKFace split is the same for every
    member (``SPLIT_SEED``); FFHQ, StyleGAN and DFDC join it only when their flag is on."""
    kw = _load_kw(cfg)
    pools: dict[str, Any] = {}
    val_im, val_y, val_g = [], [], []
    counts: dict[str, Any] = {}

    def sbi_landmarks(cs) -> np.ndarray:
        """The crops' landmarks for self-blending: the 5 points, or (``--sbi-landmarks mesh`` or
        ``mixed``) the 5 points followed by the mesh outline (N, 41, 2), NaN where no mesh was found."""
        if cfg.sbi_landmarks == "5point" or len(cs) == 0:
            return cs.landmarks
        path = cache_path(cs.name, cfg.cache_size, kw["margin"], kw.get("cache_dir", CACHE_DIR),
                          cfg.groups_limit)
        oval = load_oval(path, len(cs))
        if oval is None:
            raise FileNotFoundError(f"--sbi-landmarks mesh: no face-mesh outlines for {path.name}; run "
                                    f"`python -m deepfake_demo.training.mesh {cs.name}` (see its docstring)")
        counts.setdefault("mesh_found", {})[cs.name] = int(np.isfinite(oval[:, 0, 0]).sum())
        return np.concatenate([cs.landmarks.astype(np.float32), oval.astype(np.float32)], axis=1)

    def add_val(images: np.ndarray, label: int, name: str) -> None:
        val_im.append(images)
        val_y.extend([label] * len(images))
        val_g.extend([name] * len(images))

    fake_groups = tuple(g for g in FAKE_GROUPS if g.split("_", 2)[-1] != cfg.hold_out)
    for g in REAL_GROUPS + fake_groups:
        cs = load_group(g, limit=cfg.groups_limit, **kw)
        n = len(cs) if cfg.groups_limit is None else min(len(cs), cfg.groups_limit)
        tr, va = group_split(n, cfg)
        dropped = 0
        if g == "train_real_ffpp":
            val_originals = cs.images[va]
        if cfg.ffpp_drop_twins > 0 and (g == "train_real_ffpp" or (cfg.ffpp_drop_fake_twins and g in fake_groups)):
            # frames of a validation original's video (its fakes too, with --ffpp-drop-fake-twins)
            twin = nearest_similarity(cs.images[tr], val_originals) >= cfg.ffpp_drop_twins
            tr, dropped = tr[~twin], int(twin.sum())
        pools[g] = (cs.images[tr], sbi_landmarks(cs)[tr] if g in REAL_GROUPS else cs.landmarks[tr])
        add_val(cs.images[va], int(cs.labels[0]), g)
        counts[g] = {"train": int(len(tr)), "val": int(len(va)), "no_face": int((~cs.detected[:n]).sum())}
        if dropped:
            counts[g]["dropped_twins"] = dropped

    def synthetic_part(group: str, label: int):
        """The train part of a synthetic/ group; its validation quarter joins the split
        (as train_<label>_<name>), its held-out quarter is only counted."""
        cs = load_group(group, limit=cfg.groups_limit, **kw)
        tr, va, held = synthetic_split(group, len(cs))
        name = group.replace("synthetic_", "train_")  # train_real_ffhq, train_fake_stylegan, ...
        add_val(cs.images[va], label, name)
        counts[name] = {"train": int(len(tr)), "val": int(len(va)), "held_out": int(len(held)),
                        "no_face": int((~cs.detected).sum())}
        return cs.images[tr], (sbi_landmarks(cs) if label == 0 else cs.landmarks)[tr]

    def dfdc_part(group: str, label: int):
        cs = load_group(group, limit=cfg.groups_limit, **kw)
        parts = dfdc_split(cs.paths, kw.get("root") or _data_root())
        va = parts["val"][: cfg.val_max_per_group]
        add_val(cs.images[va], label, "train_" + group)  # train_dfdc_real, train_dfdc_fake
        counts["train_" + group] = {"train": int(len(parts["train"])), "val": int(len(va)),
                                    "held_out": int(len(parts["held_out"])), "no_face": int((~cs.detected).sum())}
        return cs.images[parts["train"]], (sbi_landmarks(cs) if label == 0 else cs.landmarks)[parts["train"]]

    ffhq = synthetic_part(FFHQ_GROUP, 0) if cfg.ffhq_frac > 0 else None
    gan = np.concatenate([synthetic_part(g, 1)[0] for g in GAN_GROUPS]) if cfg.gan_frac > 0 else None
    dfdc_real = dfdc_part(DFDC_GROUPS[0], 0) if cfg.dfdc_frac > 0 else None
    dfdc_fake = dfdc_part(DFDC_GROUPS[1], 1)[0] if cfg.dfdc_frac > 0 else None
    fake_im = np.concatenate([pools[g][0] for g in fake_groups])
    fake_m = np.concatenate([np.full(len(pools[g][0]), FAKE_GROUPS.index(g)) for g in fake_groups])
    return TrainData(pools["train_real_ffpp"], pools["train_real_utkface"], (fake_im, fake_m),
                     np.concatenate(val_im), np.asarray(val_y, np.int64), val_g, counts, ffhq, gan,
                     dfdc_real, dfdc_fake)


def ffpp_val_twin_similarity(cfg: TrainConfig) -> np.ndarray:
    """(N,) over ``cfg``'s FF++ validation originals, in split order: the highest thumbnail correlation with
    a training original of the random split (before ``--ffpp-drop-twins``: the split every shipped member
    before 2026-12-06 trained on). At :data:`TWIN_CUT` or more such a member has seen a frame of its video."""
    cs = load_group("train_real_ffpp", limit=cfg.groups_limit, **_load_kw(cfg))
    tr, va = group_split(len(cs) if cfg.groups_limit is None else min(len(cs), cfg.groups_limit), cfg)
    return nearest_similarity(cs.images[va], cs.images[tr])


def untwinned_val_mask(cfg: TrainConfig, groups: Sequence[str], cut: float = TWIN_CUT) -> np.ndarray:
    """(len(groups),) bool over ``cfg``'s validation split: False for the FF++ originals with a twin
    (:func:`ffpp_val_twin_similarity` >= ``cut``), True for every other crop."""
    g = np.asarray(groups)
    keep = np.ones(len(g), bool)
    orig = np.nonzero(g == "train_real_ffpp")[0]
    sim = ffpp_val_twin_similarity(cfg)
    if len(sim) != len(orig):
        raise ValueError(f"{len(orig)} FF++ originals in the validation split, {len(sim)} in the split of this config")
    keep[orig[sim >= cut]] = False
    return keep


def _data_root() -> Path:
    from .data import DATA_ROOT

    return DATA_ROOT


def ffpp_val_mask(groups: Sequence[str]) -> np.ndarray:
    """Which validation crops are FF++ originals or FF++ fakes: the part of the split
    with the same sources and compression on both sides, as on faces/test."""
    g = np.asarray(groups)
    return (g == "train_real_ffpp") | np.isin(g, FAKE_GROUPS)


def ffpp_val_auc(labels: np.ndarray, groups: Sequence[str], scores: np.ndarray) -> float:
    """AUC of the FF++ originals against the FF++ fakes of a validation split (:func:`ffpp_val_mask`)."""
    m = ffpp_val_mask(groups)
    return roc_auc(np.asarray(labels)[m], np.asarray(scores)[m])


# each source of validation: (its real groups, its fake groups). Generated faces are scored against the
# FFHQ photos they were trained to imitate.
_SOURCES = {
    "ffpp": (("train_real_ffpp",), FAKE_GROUPS),
    "dfdc": (("train_dfdc_real",), ("train_dfdc_fake",)),
    "gan": (("train_real_ffhq",), ("train_fake_stylegan", "train_fake_stylegan2")),
}


def source_val_aucs(labels: np.ndarray, groups: Sequence[str], scores: np.ndarray) -> dict[str, float]:
    """AUC per source present on both sides of the validation split (FF++, DFDC, generated faces),
    each source's fakes against its own reals."""
    g, s = np.asarray(groups), np.asarray(scores, np.float64)
    out = {}
    for name, (reals, fakes) in _SOURCES.items():
        r, f = np.isin(g, reals), np.isin(g, fakes)
        if r.any() and f.any():
            out[name] = roc_auc(np.r_[np.zeros(r.sum()), np.ones(f.sum())], np.r_[s[r], s[f]])
    return out


def cross_val_auc(labels: np.ndarray, groups: Sequence[str], scores: np.ndarray,
                  keep: np.ndarray | None = None) -> float:
    """The mean of :func:`source_val_aucs`: a model must tell fakes from reals within every source, and
    easy reals of one source cannot make up for another source's fakes. ``keep`` (bool over the split)
    scores only those crops: with :func:`untwinned_val_mask`, ``auc_cross_untwinned``."""
    if keep is not None:
        labels, scores = np.asarray(labels)[keep], np.asarray(scores)[keep]
        groups = [g for g, k in zip(groups, keep) if k]
    aucs = source_val_aucs(labels, groups, scores)
    return float(np.mean(list(aucs.values()))) if aucs else float("nan")


def fake_val_groups(data: TrainData) -> list[str]:
    """The fake groups of the validation split, in order: the FF++ methods, then any others."""
    fake = {g for g, y in zip(data.val_groups, data.val_labels) if y == 1}
    return [g for g in FAKE_GROUPS if g in fake] + sorted(fake - set(FAKE_GROUPS))


class EpochSet:
    """Map-style dataset for one epoch: a fixed plan of (:class:`Kind`, index); each item
    gets its own RNG from (seed, epoch, item), so runs are reproducible with workers.

    A flag left at 0 changes no draw: a plan without FFHQ, StyleGAN or DFDC is draw for draw
    the plan of the runs made before those pools existed."""

    # ``sbi_src`` holds a self-blend's source as an index into ``pools`` (FF++ reals, UTKFace, then FFHQ
    # and DFDC reals when they are used)
    POOL_REAL_FFPP = 0

    def __init__(self, data: TrainData, cfg: TrainConfig, epoch: int):
        self.d, self.cfg, self.epoch = data, cfg, epoch
        rng = np.random.default_rng([cfg.seed, epoch, 7])
        n = cfg.samples_per_epoch
        real_share = 1.0 - cfg.sbi_frac - cfg.ffpp_fake_frac
        use_ffhq = data.real_ffhq is not None and cfg.ffhq_frac > 0
        use_dfdc = data.real_dfdc is not None and cfg.dfdc_frac > 0
        # real pools, also the self-blend sources
        self.pools = pools = [data.real_ffpp, data.real_utk] + ([data.real_ffhq] if use_ffhq else []) + (
            [data.real_dfdc] if use_dfdc else [])
        ffhq = cfg.ffhq_frac if use_ffhq else 0.0
        p = {Kind.REAL_FFPP: real_share * (1 - cfg.utk_frac - ffhq), Kind.REAL_UTK: real_share * cfg.utk_frac,
             Kind.FAKE_FFPP: cfg.ffpp_fake_frac, Kind.SBI: cfg.sbi_frac, Kind.REAL_FFHQ: real_share * ffhq}
        gan = cfg.gan_frac if data.fake_gan is not None else 0.0
        if gan > 0:  # generated faces take their share from the other fakes, in proportion
            for k in (Kind.FAKE_FFPP, Kind.SBI):
                p[k] *= 1.0 - gan / (cfg.ffpp_fake_frac + cfg.sbi_frac)
            p[Kind.FAKE_GAN] = gan
        if use_dfdc:  # half real, half fake, each taken from its side in proportion
            half = cfg.dfdc_frac / 2
            for side in (REAL_KINDS, tuple(k for k in p if k not in REAL_KINDS)):
                total = sum(p[k] for k in side if k in p)
                for k in side:
                    if k in p:
                        p[k] *= 1.0 - half / total
            p[Kind.REAL_DFDC] = p[Kind.FAKE_DFDC] = half
            p.setdefault(Kind.FAKE_GAN, 0.0)
        kinds = sorted(p)
        probs = np.array([p[k] for k in kinds])
        self.kind = np.asarray(kinds)[rng.choice(len(kinds), size=n, p=probs / probs.sum())]
        sizes = {Kind.REAL_FFPP: len(data.real_ffpp[0]), Kind.REAL_UTK: len(data.real_utk[0]),
                 Kind.FAKE_FFPP: len(data.fake[0]), Kind.REAL_FFHQ: len(pools[2][0]) if use_ffhq else 0,
                 Kind.FAKE_GAN: len(data.fake_gan) if gan > 0 else 0,
                 Kind.REAL_DFDC: len(data.real_dfdc[0]) if use_dfdc else 0,
                 Kind.FAKE_DFDC: len(data.fake_dfdc) if use_dfdc else 0}
        self.index = np.zeros(n, np.int64)
        self.sbi_src = rng.integers(0, len(pools), n) if len(pools) > 2 else (rng.random(n) >= 0.5).astype(np.int64)
        for k in (Kind.REAL_FFPP, Kind.REAL_UTK, Kind.FAKE_FFPP, Kind.REAL_FFHQ) + ((Kind.FAKE_GAN,) if gan > 0 else ()):
            m = self.kind == k
            self.index[m] = rng.integers(0, sizes[k], m.sum()) if m.any() else 0
        m = self.kind == Kind.SBI
        if len(pools) == 2:  # the draws of the runs before FFHQ existed, kept exactly
            from_ffpp = self.sbi_src[m] == self.POOL_REAL_FFPP  # else from UTKFace
            self.index[m] = np.where(from_ffpp, rng.integers(0, sizes[Kind.REAL_FFPP], m.sum()),
                                     rng.integers(0, sizes[Kind.REAL_UTK], m.sum()))
        else:
            for src, pool in enumerate(pools):
                sel = m & (self.sbi_src == src)
                self.index[sel] = rng.integers(0, len(pool[0]), sel.sum())
        if use_dfdc:
            for k in (Kind.REAL_DFDC, Kind.FAKE_DFDC):
                m = self.kind == k
                self.index[m] = rng.integers(0, sizes[k], m.sum())

    def __len__(self) -> int:
        return len(self.kind)

    def _draw(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Item ``i`` before augmentation: (crop uint8 (S, S, 3) at cache size, label); a self-blend
        draws from ``rng``, which the augmentation then continues."""
        k, j = Kind(int(self.kind[i])), int(self.index[i])
        d = self.d
        if k == Kind.SBI:
            pool = self.pools[int(self.sbi_src[i])]
            lm = blend_landmarks(pool[1][j], self.cfg.sbi_landmarks, rng)
            return self_blend(pool[0][j], lm, rng)[0], 1.0
        image, label = {Kind.REAL_FFPP: (d.real_ffpp, 0.0), Kind.REAL_UTK: (d.real_utk, 0.0),
                        Kind.FAKE_FFPP: (d.fake, 1.0), Kind.REAL_FFHQ: (d.real_ffhq, 0.0),
                        Kind.REAL_DFDC: (d.real_dfdc, 0.0)}.get(k, (None, 1.0))
        if image is not None:
            return image[0][j], label
        return (d.fake_gan if k == Kind.FAKE_GAN else d.fake_dfdc)[j], 1.0

    def _pre_steps(self):
        """What may happen to a sample before :func:`augment`, in this order: (share, RNG stream, step, reals
        only). ``--soften-frac`` and ``--recompress-frac`` touch real and fake alike; ``--soften-real-frac``
        and ``--recompress-real-frac`` touch real samples only."""
        c = self.cfg
        return ((c.soften_frac, 11, soften, False), (c.soften_real_frac, 12, mild_soften, True),
                (c.recompress_real_frac, 13, recompress, True), (c.recompress_frac, 14, heavy_recompress, False))

    def __getitem__(self, i: int):
        import torch

        rng = np.random.default_rng([self.cfg.seed, self.epoch, int(i)])
        img, y = self._draw(i, rng)
        for frac, stream, step, reals_only in self._pre_steps():
            if frac > 0 and not (reals_only and y != 0.0):
                # each step has its own RNG stream: the other draws stay those of a run without it
                r = np.random.default_rng([self.cfg.seed, self.epoch, int(i), stream])
                if r.random() < frac:
                    img = step(img, r)
        out = augment(img, rng, self.cfg.input_size, self.cfg.aug_strength)
        return torch.from_numpy(out), torch.tensor(y, dtype=torch.float32)
