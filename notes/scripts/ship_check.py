"""Ship rules for CPU fine-tunes of the shipped pair, each committed before its run; ``--rule`` picks one.

Scores the reference ensemble (--reference, a weights directory, on its own 160 px crop cache) and the
candidate runs' best checkpoints (--runs, on the --cache-size crop cache, each at its own input size) on ONE
validation split: the FF++/UTKFace part plus the FFHQ validation quarter (``--ffhq-frac 0.2``), the split
the shipped pair was chosen on; ``--rule gan`` adds the StyleGAN/StyleGAN2 validation quarters
(``--gan-frac 0.1``, ``training.data.synthetic_split``). faces/test, the held-out quarters and the videos
play no part. Each candidate member's temperature, and then the ensemble's, is fitted on this split as
training.calibrate does; members are combined with equal weights, as the ensembles of these experiments were.

``--rule input-size`` (notes/experiments/2026-11-23-input-size-224/; ``--cache-size 224``):
  the candidate ships if its ensemble AUC on the whole split >= the reference's + 0.01 and its share of
  FFHQ validation photos called FAKE (the app's band) <= the reference's + 0.05.
``--rule ffpp-selection`` (notes/experiments/2026-11-23-ffpp-selection/):
  the candidate ships if its ensemble AUC on the FF++ part (FF++ originals against FF++ fakes) >= the
  reference's + 0.015, its AUC on the whole split >= the reference's - 0.01, and its FFHQ share called
  FAKE <= the reference's + 0.05.
``--rule soften`` (notes/experiments/2026-11-23-soften-finetune/; the figures of notes/scripts/soft_val.py,
  here also for the one-member swaps): the candidate ships if, as is, its FF++-part AUC >= the reference's - 0.01,
  its whole-split AUC >= the reference's - 0.01 and its FFHQ share called FAKE <= the reference's + 0.05; and,
  with every validation crop blurred (Gaussian sigma 2), its share of FF++ originals called FAKE <= 0.25 and
  its FF++-part AUC >= the reference's.
``--rule soup`` (notes/scripts/soup.py's weight averages, notes/experiments/2026-11-23-model-soup/): the
  candidate ships if, as is, its FF++-part AUC >= the reference's + 0.005, its whole-split AUC >= the
  reference's - 0.005 and its FFHQ share called FAKE <= the reference's + 0.05; and, blurred (sigma 2), its
  share of FF++ originals called FAKE <= the reference's + 0.03 and its FF++-part AUC >= the reference's - 0.005
  (the soft-face gains kept).
``--rule gan`` (the ``--gan-frac`` fine-tune, notes/experiments/2026-11-23-gan-finetune/; this was
  ship_check_gan.py): the candidate pair ships only if all three hold:
  1. ensemble AUC on the FF++/UTKFace part >= the reference's - 0.01;
  2. ensemble AUC of StyleGAN faces against FFHQ photos (validation quarters) >= 0.75;
  3. share of the FFHQ validation photos called FAKE (the app's band) <= the reference's + 0.05.
``--rule auc-cross`` (the ImageNet-started members from 2026-12-02 on: notes/experiments/2026-12-02-pretrained-lite0/
  and every later experiment that names it; this was that folder's ship_check.py): a different scoring. Each
  weights directory in ``--ensembles`` (shipped ``weights`` and candidates exported with ``--fit-ensemble``) is
  scored on the validation split of ``--split-from``'s run config (the shipped members' split plus DFDC),
  members combined as that directory's ``ensemble.json`` says (weights, temperatures); it prints AUC, the FF++
  part, AUC per source and their mean (``auc_cross``) for each, and the same mean with the FF++ part
  judged on the validation originals without a twin in the random split's training
  (``auc_cross_untwinned``). The rule itself is in each experiment's README
  (typically: the candidate's auc_cross above the shipped one's by more than 0.005, its FF++ part no more than
  0.01 below), and ``--margin`` / ``--ffpp-slack`` check it against the first directory given.
``--rule auc-cross-untwinned`` (the rule of notes/experiments/2026-12-06-untwinned-xception/ and the experiments
  that name it; the same scoring): a candidate passes if its auc_cross_untwinned beats the first directory's by
  more than ``--margin``, its share of untwinned FF++ originals called FAKE is no higher, and neither its DFDC
  nor its generated-face AUC is more than ``--source-slack`` (0.03) below. Before 2026-12-06 23:30 those
  experiments applied it by hand to this script's auc-cross output, whose ``passes`` is the plain auc-cross rule.
  Both auc-cross rules also report a paired bootstrap of their figure against the first directory
  (``--bootstrap``, 1,000 resamples by default; ``bootstrap_vs_first`` in the output): the gain's standard
  error and 95 % interval, for a rule to ask for a gain beyond the split's noise; ``--gain-beyond-noise`` (rules
  registered from 2026-12-07 on) asks it: the interval must lie above 0, in place of ``--margin``.
  ``--degrade KIND:VALUE`` (rules registered from 2026-12-07 19:11 on, e.g. ``h264:40``): the same scoring with
  every validation crop degraded first as robustness.py degrades faces/test, members and ensemble keeping the
  temperatures and weights they carry; the output rows say ``degraded``.
  ``--gain-floor F`` (rules from 2026-12-07 22:00 on): the gain passes if its interval's lower end is at or
  above F (non-inferior, e.g. -0.01). With ``--bootstrap`` every later row also gets ``false_alarms_vs_first``:
  the share of every validation real (FF++ originals, UTKFace, FFHQ, DFDC) called FAKE under the app's band,
  both pairs, and a paired bootstrap of the rise; ``--false-alarm-margin M`` makes it the rule's false-alarm
  guard (the interval's upper end at most M) in place of the 49 untwinned originals' share.
For every rule but gan and auc-cross: 1. the candidate pair ships if it passes; 2. else a pair with one member swapped
(candidate + shipped member) that passes, the higher figure of the rule if both do; 3. else nothing ships.
The gan rule judged the candidate pair alone, and still does.

The outputs of the runs that decided are in notes/logs/ship_check_{res,ffsel,soften,soup,gan}.json (written
before the two scripts were merged; the figures a rerun prints are the same, the keys of the gan rule's
output are the other rules' now).

  .venv/bin/python notes/scripts/ship_check.py --rule input-size --cache-size 224 \\
      --reference weights --runs runs/efficientnet_b0_224_ft runs/legacy_xception_224_ft
  .venv/bin/python notes/scripts/ship_check.py --rule ffpp-selection \\
      --reference weights --runs runs/efficientnet_b0_160_ffsel runs/legacy_xception_160_ffsel
  .venv/bin/python notes/scripts/ship_check.py --rule soften \\
      --reference weights --runs runs/efficientnet_b0_160_soften runs/legacy_xception_160_soften
  .venv/bin/python notes/scripts/ship_check.py --rule soup \\
      --reference weights --runs runs/soup_efficientnet_b0 runs/soup_legacy_xception
  .venv/bin/python notes/scripts/ship_check.py --rule gan \\
      --reference runs/shipped_before --runs runs/efficientnet_b0_160_gan runs/legacy_xception_160_gan
  .venv/bin/python notes/scripts/ship_check.py --rule auc-cross \\
      --split-from runs/xception_imagenet --ensembles weights runs/cand_xi --out ship_check.json
  .venv/bin/python notes/scripts/ship_check.py --rule auc-cross-untwinned --gain-beyond-noise \\
      --split-from runs/shipped_split --ensembles weights runs/cand --out ship_check.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]  # repo root, scripts

import numpy as np  # noqa: E402

from deepfake_demo.training.dataset import TWIN_CUT, cross_val_auc, untwinned_val_mask  # noqa: E402

GAN_VAL_GROUPS = ("train_real_ffhq", "train_fake_stylegan", "train_fake_stylegan2")


def _criteria(rule: str, c: dict, r: dict) -> dict[str, bool]:
    """Each criterion of ``rule`` for candidate figures ``c`` against reference figures ``r``."""
    ffhq_ok = c["ffhq_val_called_fake"] <= r["ffhq_val_called_fake"] + 0.05
    if rule == "input-size":
        return {"auc_whole_split": c["auc_whole_split"] >= r["auc_whole_split"] + 0.01, "ffhq_fake_share": ffhq_ok}
    if rule == "ffpp-selection":
        return {"auc_ffpp_part": c["auc_ffpp_part"] >= r["auc_ffpp_part"] + 0.015,
                "auc_whole_split": c["auc_whole_split"] >= r["auc_whole_split"] - 0.01, "ffhq_fake_share": ffhq_ok}
    if rule == "soften":
        return {"auc_ffpp_part": c["auc_ffpp_part"] >= r["auc_ffpp_part"] - 0.01,
                "auc_whole_split": c["auc_whole_split"] >= r["auc_whole_split"] - 0.01, "ffhq_fake_share": ffhq_ok,
                "blur2_ffpp_real_called_fake": c["blur2_ffpp_real_called_fake"] <= 0.25,
                "blur2_auc_ffpp_part": c["blur2_auc_ffpp_part"] >= r["blur2_auc_ffpp_part"]}
    if rule == "soup":
        return {"auc_ffpp_part": c["auc_ffpp_part"] >= r["auc_ffpp_part"] + 0.005,
                "auc_whole_split": c["auc_whole_split"] >= r["auc_whole_split"] - 0.005, "ffhq_fake_share": ffhq_ok,
                "blur2_ffpp_real_called_fake": c["blur2_ffpp_real_called_fake"]
                <= r["blur2_ffpp_real_called_fake"] + 0.03,
                "blur2_auc_ffpp_part": c["blur2_auc_ffpp_part"] >= r["blur2_auc_ffpp_part"] - 0.005}
    if rule == "gan":
        return {"1_ffpp_utk_auc": c["auc_ffpp_utk_part"] >= r["auc_ffpp_utk_part"] - 0.01,
                "2_stylegan_auc": c["auc_stylegan_vs_ffhq"] >= 0.75, "3_ffhq_fake_share": ffhq_ok}
    raise ValueError(rule)


RULES = ("input-size", "ffpp-selection", "soften", "soup", "gan", "auc-cross", "auc-cross-untwinned")


def ensemble_val_logits(wdir: Path, cfg, member_logits: dict | None = None,
                        transform=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(ensemble logits, labels, groups) of the weights directory ``wdir`` on ``cfg``'s validation split: each
    member's shipped weights (``exported_val_logits``) through its card's temperature, weighted as the
    ensemble card says (equal weights where it does not fit these members), over the ensemble temperature.
    ``member_logits``, if given, receives each member's raw logits by name; ``transform`` (``--degrade``) is
    applied to every validation crop first."""
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.training.calibrate import exported_val_logits

    cards, ens = read_cards(wdir), read_ensemble_card(wdir)
    fitted = ens is not None and ens.fits([c.name for c in cards])
    z, labels, groups = 0.0, None, None
    for c in cards:  # each member on the crops it was validated on (exported_val_logits), one split for all
        val_logits, member_labels, member_groups = exported_val_logits(c, cfg, transform)
        if labels is not None and (not np.array_equal(labels, member_labels) or list(groups) != list(member_groups)):
            raise ValueError(f"{wdir}: {c.name} was scored on another validation split than the members before it")
        labels, groups = member_labels, member_groups
        if member_logits is not None:
            member_logits[c.name] = np.asarray(val_logits, np.float64)
        w = ens.weight(c.name) if fitted else 1 / len(cards)
        z = z + w * np.asarray(val_logits, np.float64) / c.spec.temperature
    wsum = sum(ens.weight(c.name) for c in cards) if fitted else 1.0
    return z / wsum / (ens.temperature if ens is not None else 1.0), np.asarray(labels), list(groups)


def _untwinned_figures(labels, z, groups, keep: np.ndarray, threshold: float) -> dict:
    """Reported beside the rule, not part of it: the FF++ part judged on the validation originals without a
    twin in training (FF++ fakes against them), and how often each kind of original is called FAKE. ``keep``:
    :func:`~deepfake_demo.training.dataset.untwinned_val_mask` over the split."""
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.training.config import FAKE_GROUPS
    from deepfake_demo.training.metrics import roc_auc, sigmoid

    g, y, p = np.asarray(groups), np.asarray(labels), sigmoid(np.asarray(z))
    orig = np.nonzero(g == "train_real_ffpp")[0]
    free, twinned = orig[keep[orig]], orig[~keep[orig]]
    idx = np.concatenate([free, np.nonzero(np.isin(g, FAKE_GROUPS))[0]])

    def fake_share(sel):
        return verdict_shares(y[sel], p[sel], threshold)["real"]["FAKE"] if len(sel) else None

    return {"n_ffpp_originals_untwinned": int(len(free)),
            "auc_ffpp_untwinned": roc_auc(y[idx], p[idx]) if len(free) else None,
            "ffpp_originals_fake_share": {"untwinned": fake_share(free), "twinned": fake_share(twinned)}}


def paired_bootstrap(labels, groups, z_ref, z_cand, keep: np.ndarray | None = None, n: int = 1000,
                     seed: int = 0) -> dict:
    """How far the candidate's ``auc_cross`` (on the crops ``keep`` selects: ``auc_cross_untwinned`` with
    :func:`~deepfake_demo.training.dataset.untwinned_val_mask`) is above the reference's beyond the noise of
    the split: both scored on the same ``n`` resamples of the validation crops, drawn with replacement within
    each group (so every source keeps its size). Returns the point difference, the resamples' standard error
    and 95 % interval of it, and the share of resamples in which the candidate is ahead."""
    y, g = np.asarray(labels), np.asarray(groups)
    a, b = np.asarray(z_ref, np.float64), np.asarray(z_cand, np.float64)
    if keep is not None:  # resample the kept crops only
        y, g, a, b = y[keep], g[keep], a[keep], b[keep]
    point = cross_val_auc(y, g, b) - cross_val_auc(y, g, a)
    diffs = np.array([cross_val_auc(y[idx], g[idx], b[idx]) - cross_val_auc(y[idx], g[idx], a[idx])
                      for idx in _resamples(g, n, seed)])
    return {"diff": float(point), **_spread(diffs), "share_candidate_ahead": float((diffs > 0).mean()),
            "resamples": n}


def _resamples(groups: np.ndarray, n: int, seed: int):
    """``n`` bootstrap index arrays over ``groups``, each drawn with replacement within every group (so every
    source keeps its size), from one seeded generator: the draws both bootstraps of this script share."""
    rng = np.random.default_rng(seed)
    members = [np.nonzero(groups == name)[0] for name in dict.fromkeys(groups)]
    for _ in range(n):
        yield np.concatenate([rng.choice(m, len(m)) for m in members])


def _spread(diffs: np.ndarray) -> dict:
    """The resampled differences' standard error and 95 % interval."""
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return {"se": float(diffs.std(ddof=1)), "ci95": [float(lo), float(hi)]}


def _gains(figure: str, row: dict, ref: dict, margin: float, interval: list[float] | None,
           floor: float | None = None) -> bool:
    """Whether ``row``'s ``figure`` beats ``ref``'s: by more than ``margin``, or, given ``interval``
    (the paired bootstrap's 95 % interval of the gain), with all of it above 0 (``--gain-beyond-noise``) or,
    given ``floor`` too (``--gain-floor``), with its lower end at or above ``floor`` (non-inferior)."""
    if interval is None:
        return row[figure] > ref[figure] + margin
    return interval[0] >= floor if floor is not None else interval[0] > 0


def false_alarm_bootstrap(labels, groups, p_ref, p_cand, fake_ref: float, fake_cand: float, n: int = 1000,
                          seed: int = 0) -> dict:
    """``--false-alarm-margin``: the share of every real validation crop called FAKE (probability at or above
    each pair's FAKE edge, ``fake_ref`` / ``fake_cand``: the app's band) by the reference and by the
    candidate, and a paired bootstrap of the candidate's share minus the reference's: ``n`` resamples of the
    real crops, drawn with replacement within each group. Returns both shares, the point difference, its
    standard error and 95 % interval, and the number of real crops."""
    y, g = np.asarray(labels), np.asarray(groups)
    real = y == 0
    a = np.asarray(p_ref, np.float64)[real] >= fake_ref
    b = np.asarray(p_cand, np.float64)[real] >= fake_cand
    diffs = np.array([b[idx].mean() - a[idx].mean() for idx in _resamples(g[real], n, seed)])
    return {"share_reference": float(a.mean()), "share_candidate": float(b.mean()),
            "diff": float(b.mean() - a.mean()), **_spread(diffs), "n_reals": int(real.sum()), "resamples": n}


def untwinned_passes(row: dict, ref: dict, margin: float = 0.005, source_slack: float = 0.03,
                     interval: list[float] | None = None, floor: float | None = None,
                     false_alarm_margin: float | None = None) -> bool:
    """``--rule auc-cross-untwinned`` on two rows of :func:`auc_cross`: the candidate ``row`` against ``ref``
    (``interval``, ``floor``: see :func:`_gains`). ``false_alarm_margin`` (``--false-alarm-margin``): the
    false-alarm guard is the upper end of ``row["false_alarms_vs_first"]``'s 95 % interval (every validation
    real, :func:`false_alarm_bootstrap`) at most this, in place of no larger share of the 49 untwinned FF++
    originals called FAKE."""
    share = "ffpp_originals_fake_share"
    guard = (row["false_alarms_vs_first"]["ci95"][1] <= false_alarm_margin if false_alarm_margin is not None
             else row[share]["untwinned"] <= ref[share]["untwinned"])
    return bool(_gains("auc_cross_untwinned", row, ref, margin, interval, floor) and guard
                and all(row["auc_by_source"][s] >= ref["auc_by_source"][s] - source_slack for s in ("dfdc", "gan")))


def auc_cross(split_from: Path, ensembles: list[Path], margin: float, ffpp_slack: float,
              untwinned: bool = False, source_slack: float = 0.03, bootstrap: int = 0,
              beyond_noise: bool = False, transform=None, gain_floor: float | None = None,
              false_alarm_margin: float | None = None) -> dict:
    """``--rule auc-cross``: each weights directory's ensemble on ``split_from``'s validation split; the
    directories after the first pass if their auc_cross beats the first's by more than ``margin`` and their
    FF++ part is at most ``ffpp_slack`` below it. ``untwinned`` (``--rule auc-cross-untwinned``): they pass
    if their auc_cross_untwinned beats the first's by more than ``margin``, they call no larger share of the
    untwinned FF++ originals FAKE, and neither their DFDC nor their generated-face AUC is more than
    ``source_slack`` below the first's. ``bootstrap`` (resamples, 0 = off): each later directory also gets
    :func:`paired_bootstrap` against the first, for the figure its rule judges (reported, not part of a rule
    fixed before 2026-12-06 23:40). ``beyond_noise`` (``--gain-beyond-noise``, rules from 2026-12-07 on; needs
    ``bootstrap``): the gain must have its bootstrap 95 % interval above 0 instead of beating ``margin``.
    ``transform`` (``--degrade``): every validation crop is degraded first, members and ensemble keep the
    temperatures and weights they shipped with. ``gain_floor`` (``--gain-floor``, needs ``bootstrap``): the
    gain's interval needs only its lower end at or above this (non-inferior). ``false_alarm_margin``
    (``--false-alarm-margin``, auc-cross-untwinned; needs ``bootstrap``): the false-alarm guard is
    :func:`false_alarm_bootstrap` over every validation real, its interval's upper end at most this."""
    if (beyond_noise or gain_floor is not None or false_alarm_margin is not None) and not bootstrap:
        raise ValueError("--gain-beyond-noise, --gain-floor and --false-alarm-margin need --bootstrap > 0")
    from deepfake_demo.aggregate import band_edges
    from deepfake_demo.cards import read_cards, read_ensemble_card
    from deepfake_demo.config import DECISION
    from deepfake_demo.training.calibrate import calibration
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.metrics import sigmoid

    cfg = TrainConfig.from_dict(json.loads((split_from / "config.json").read_text()))
    results, keep, logits, fake_edge = {}, None, {}, {}  # every wdir is scored on the same split (labels, groups)
    for wdir in ensembles:
        cards, ens = read_cards(wdir), read_ensemble_card(wdir)
        z, labels, groups = ensemble_val_logits(wdir, cfg, transform=transform)
        logits[str(wdir)] = z
        fake_edge[str(wdir)] = band_edges(float(ens.threshold) if ens is not None else 0.5,
                                          DECISION.uncertain_band)[1]
        keep = untwinned_val_mask(cfg, groups, TWIN_CUT) if keep is None else keep  # one split for every wdir
        cal = calibration(labels, z, groups)
        results[str(wdir)] = {"members": [c.name for c in cards],
                              "ece": cal["ece_before"],  # with the ensemble's own temperature, as shipped
                              **{k: cal[k] for k in ("auc", "auc_ffpp", "auc_by_source", "auc_cross", "n")},
                              **_untwinned_figures(labels, z, groups, keep,
                                                   float(ens.threshold) if ens is not None else 0.5)}
        row = results[str(wdir)]
        if row["auc_ffpp_untwinned"] is not None:  # auc_cross with the FF++ part judged on untwinned originals
            row["auc_cross_untwinned"] = cross_val_auc(labels, groups, z, keep)
        print(str(wdir), json.dumps(row, default=float), flush=True)
    ref = results[str(ensembles[0])]
    for name, row in list(results.items())[1:]:
        if bootstrap:
            row["bootstrap_vs_first"] = {
                "figure": "auc_cross_untwinned" if untwinned else "auc_cross",
                **paired_bootstrap(labels, groups, logits[str(ensembles[0])], logits[name],
                                   keep if untwinned else None, bootstrap)}
        if bootstrap:  # every validation real called FAKE, candidate minus first (reported; a rule with
            # --false-alarm-margin judges it)
            first = str(ensembles[0])
            row["false_alarms_vs_first"] = false_alarm_bootstrap(
                labels, groups, sigmoid(logits[first]), sigmoid(logits[name]),
                fake_edge[first], fake_edge[name], bootstrap)
        interval = row["bootstrap_vs_first"]["ci95"] if (beyond_noise or gain_floor is not None) else None
        if untwinned:
            row["passes"] = untwinned_passes(row, ref, margin, source_slack, interval, gain_floor, false_alarm_margin)
            row["rule"] = "auc-cross-untwinned"
        else:
            row["passes"] = bool(_gains("auc_cross", row, ref, margin, interval, gain_floor)
                                 and row["auc_ffpp"] >= ref["auc_ffpp"] - ffpp_slack)
            row["rule"] = "auc-cross"
        if gain_floor is not None:
            row["rule"] += f" (non-inferior: bootstrap 95 % interval of the gain from {gain_floor:+g} up)"
        elif beyond_noise:
            row["rule"] += " (gain beyond noise: bootstrap 95 % interval above 0)"
        if untwinned and false_alarm_margin is not None:
            row["rule"] += (f" (false alarms: every validation real called FAKE, bootstrap 95 % interval of the "
                            f"rise at most {false_alarm_margin:g})")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rule", required=True, choices=RULES)
    ap.add_argument("--reference", help="weights directory of the pair to beat (every rule but auc-cross)")
    ap.add_argument("--runs", nargs="+", help="the candidate runs (their best.pt; every rule but auc-cross)")
    ap.add_argument("--cache-size", type=int, default=160, help="crop cache the candidates are scored on")
    ap.add_argument("--split-from", type=Path, help="auc-cross: a run directory whose config.json gives the split")
    ap.add_argument("--ensembles", type=Path, nargs="+",
                    help="auc-cross: weights directories, the reference (shipped) first")
    ap.add_argument("--margin", type=float, default=0.005, help="auc-cross: auc_cross must beat the first by more")
    ap.add_argument("--ffpp-slack", type=float, default=0.01, help="auc-cross: FF++ part at most this below the first")
    ap.add_argument("--source-slack", type=float, default=0.03,
                    help="auc-cross-untwinned: DFDC and generated-face AUC at most this below the first")
    ap.add_argument("--bootstrap", type=int, default=1000,
                    help="auc-cross rules: paired bootstrap resamples of the rule's figure against the first "
                         "directory (0 = off)")
    ap.add_argument("--gain-beyond-noise", action="store_true",
                    help="auc-cross rules: the gain must have its bootstrap 95 %% interval above 0 (in place of "
                         "--margin)")
    ap.add_argument("--gain-floor", type=float,
                    help="auc-cross rules: the gain needs only its bootstrap 95 %% interval's lower end at or above "
                         "this (non-inferiority, e.g. -0.01; in place of --margin and --gain-beyond-noise)")
    ap.add_argument("--false-alarm-margin", type=float,
                    help="auc-cross-untwinned: the false-alarm guard counts every validation real called FAKE "
                         "(the app's band); the bootstrap 95 %% interval of the candidate's share minus the "
                         "first's must end at or below this (e.g. 0.02), in place of no larger share of the "
                         "untwinned FF++ originals")
    ap.add_argument("--out", type=Path, help="auc-cross: also write the figures here (JSON)")
    ap.add_argument("--degrade", metavar="KIND:VALUE",
                    help="auc-cross rules: score every validation crop degraded as robustness.py does, e.g. "
                         "h264:40 (one more H.264 encode at crf 40, FF++'s c40) or blur:2")
    args = ap.parse_args()
    if args.rule in ("auc-cross", "auc-cross-untwinned"):
        if not args.split_from or not args.ensembles:
            ap.error(f"--rule {args.rule} needs --split-from and --ensembles")
        if (args.gain_beyond_noise or args.gain_floor is not None or args.false_alarm_margin is not None) \
                and not args.bootstrap:
            ap.error("--gain-beyond-noise, --gain-floor and --false-alarm-margin need --bootstrap > 0")
        if args.gain_beyond_noise and args.gain_floor is not None:
            ap.error("give --gain-beyond-noise or --gain-floor, not both")
        if args.false_alarm_margin is not None and args.rule != "auc-cross-untwinned":
            ap.error("--false-alarm-margin is a guard of --rule auc-cross-untwinned")
        transform = None
        if args.degrade:
            from robustness import CONDITIONS, degrade
            kinds = sorted({k for k, _ in CONDITIONS} - {"none"})
            kind, _, value = args.degrade.partition(":")
            if kind not in kinds or not value.replace(".", "", 1).isdigit():
                ap.error(f"--degrade {args.degrade}: give KIND:VALUE with KIND one of {', '.join(kinds)}")
            transform = lambda im: degrade(im, kind, float(value))  # noqa: E731
        results = auc_cross(args.split_from, args.ensembles, args.margin, args.ffpp_slack,
                            untwinned=args.rule == "auc-cross-untwinned", source_slack=args.source_slack,
                            bootstrap=args.bootstrap, beyond_noise=args.gain_beyond_noise, transform=transform,
                            gain_floor=args.gain_floor, false_alarm_margin=args.false_alarm_margin)
        if args.degrade:
            for row in results.values():
                row["degraded"] = args.degrade
        if args.out:
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
        return 0
    if not args.reference or not args.runs:
        ap.error(f"--rule {args.rule} needs --reference and --runs")
    blur = args.rule in ("soften", "soup")  # also every crop blurred (sigma 2), scored with the same temperatures
    if (blur or args.rule == "gan") and args.cache_size != 160:
        ap.error(f"--rule {args.rule} scores 160 px crops (as soft_val.py / its split); leave --cache-size at 160")

    import torch
    from robustness import degrade  # the blur robustness.py and soft_val.py apply

    from deepfake_demo.aggregate import ensemble_probability
    from deepfake_demo.evaluate import verdict_shares
    from deepfake_demo.models import load_ensemble
    from deepfake_demo.training.config import TrainConfig, member_spec
    from deepfake_demo.training.dataset import ffpp_val_auc, load_train_data
    from deepfake_demo.training.loop import load_run, predict_logits
    from deepfake_demo.training.metrics import fit_temperature, roc_auc, sigmoid
    torch.set_num_threads(2)

    gan_frac = 0.1 if args.rule == "gan" else 0.0
    d_ref = load_train_data(TrainConfig(input_size=160, cache_size=160, ffhq_frac=0.2, gan_frac=gan_frac))
    d_new = d_ref if args.cache_size == 160 else load_train_data(
        TrainConfig(input_size=args.cache_size, cache_size=args.cache_size, ffhq_frac=0.2))
    assert d_ref.val_groups == d_new.val_groups and np.array_equal(d_ref.val_labels, d_new.val_labels)
    y, g = d_ref.val_labels, np.asarray(d_ref.val_groups)
    ffhq = g == "train_real_ffhq"
    synth = np.isin(g, GAN_VAL_GROUPS)  # FFHQ photos and generated faces; only FFHQ when there are no GAN groups
    old = ~synth  # the FF++/UTKFace part

    # every member's validation logit, calibrated on this split (the shipped ones by their cards' T)
    ref = load_ensemble(args.reference, "cpu")
    val_blurred = np.stack([degrade(i, "blur", 2.0) for i in d_ref.val_images]) if blur else None
    shipped, shipped_b = {}, {}
    for c, m in zip(ref.cards, ref.models):
        shipped[c.spec.arch] = predict_logits(m, d_ref.val_images, c.spec) / c.spec.temperature
        if blur:
            shipped_b[c.spec.arch] = predict_logits(m, val_blurred, c.spec) / c.spec.temperature
    cand, cand_b = {}, {}
    for rd in args.runs:
        model, cfg, _ = load_run(rd)
        model.half().float()  # what ships is fp16
        lg = predict_logits(model, d_new.val_images, member_spec(cfg))
        t = fit_temperature(y, lg)
        cand[cfg.arch] = lg / t
        if blur:
            cand_b[cfg.arch] = predict_logits(model, val_blurred, member_spec(cfg)) / t

    def figures(zs, temperature=None, threshold=0.5, zs_blur=None):
        """As the app combines members (aggregate.ensemble_probability); a candidate's ensemble
        temperature is fitted on the mean calibrated logit, as fit_ensemble does."""
        if temperature is None:
            temperature = fit_temperature(y, np.mean(zs, axis=0))
        p = ensemble_probability([sigmoid(z) for z in zs], temperature=temperature)
        out = {"auc_whole_split": roc_auc(y, p), "auc_ffpp_utk_part": roc_auc(y[old], p[old]),
               "auc_ffpp_part": ffpp_val_auc(y, g, p),
               "ffhq_val_called_fake": verdict_shares(y[ffhq], p[ffhq], threshold)["real"]["FAKE"]}
        if args.rule == "gan":
            out["auc_stylegan_vs_ffhq"] = roc_auc(y[synth], p[synth])
        if zs_blur is not None:
            pb = ensemble_probability([sigmoid(z) for z in zs_blur], temperature=temperature)
            ff = g == "train_real_ffpp"
            out["blur2_auc_ffpp_part"] = ffpp_val_auc(y, g, pb)
            out["blur2_ffpp_real_called_fake"] = verdict_shares(y[ff], pb[ff], threshold)["real"]["FAKE"]
            out["blur2_fake_called_fake"] = verdict_shares(y[y == 1], pb[y == 1], threshold)["fake"]["FAKE"]
        return out

    r = figures(list(shipped.values()), float(ref.ensemble_card.temperature),
                float(ref.ensemble_card.threshold), list(shipped_b.values()) if blur else None)
    archs = list(shipped)
    pairs = {"candidate pair": ([cand[a] for a in archs], [cand_b[a] for a in archs] if blur else None)}
    if args.rule != "gan":
        for a in archs:  # swap one member
            pairs[f"candidate {a} + shipped {[b for b in archs if b != a][0]}"] = (
                [cand[b] if b == a else shipped[b] for b in archs],
                [cand_b[b] if b == a else shipped_b[b] for b in archs] if blur else None)
    rows = {}
    for name, (zs, zs_b) in pairs.items():
        c = figures(zs, zs_blur=zs_b)
        c["criteria"] = _criteria(args.rule, c, r)
        c["passes"] = all(c["criteria"].values())
        rows[name] = c
    key = "auc_whole_split" if args.rule == "input-size" else "auc_ffpp_part"  # soften, soup: the higher FF++ AUC
    ship = "candidate pair" if rows["candidate pair"]["passes"] else max(
        (n for n in rows if rows[n]["passes"]), key=lambda n: rows[n][key], default=None)
    n = {"ffpp_utk": int(old.sum()), "ffhq": int(ffhq.sum())}
    if args.rule == "gan":
        n["gan"] = int((synth & (y == 1)).sum())
    print(json.dumps({"rule": args.rule, "n": n,
                      "members_auc": {"shipped": {a: roc_auc(y, z) for a, z in shipped.items()},
                                      "candidate": {a: roc_auc(y, z) for a, z in cand.items()}},
                      "reference": r, "candidates": rows, "ship": ship}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
