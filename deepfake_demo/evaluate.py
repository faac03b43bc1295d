"""Evaluate the shipped ensemble: ``python -m deepfake_demo.evaluate``.

1. Face crops of ``faces/test`` (re-detected and cut with the inference crop
   function): per member and for the ensemble, AUC, accuracy, balanced
   accuracy, log-loss, ECE, confusion matrix at the decision threshold, and
   AUC per manipulation; ROC curves and a reliability diagram as PNG.
2. The shared videos through the full pipeline
   (``Detector.analyze(path, frames=N).fake_probability``): each video's
   probability and verdict, and the video-level AUC.
Results go to ``--out`` (default ``runs/eval``) as ``results.json`` and
``results.md``; ``--write-cards`` adds the test figures to the model cards.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["evaluate_crops", "dfdc_held_out", "sources_table", "trained_on_sources", "EVALUATE_COMMAND", "evaluate_videos", "plot_roc", "plot_reliability", "main"]

ENSEMBLE = "ensemble"
EVALUATE_COMMAND = "python -m deepfake_demo.evaluate --synthetic --dfdc --write-cards --model-card weights/README.md"


def _member_crops(spec, groups: Sequence[str], cache_size: int, data_root: Path | None,
                  subsets: dict[str, np.ndarray] | None = None, transform=None):
    """Test crops for one member: cached crops at ``cache_size`` (cut by
    ``crop_face`` at the member's margin), passed through ``transform`` if
    given, resized to its input size; only the indices in ``subsets[group]`` where given."""
    from .training.augment import resize_to
    from .training.data import load_group

    kw = {"root": data_root} if data_root else {}
    ims, ys, gs = [], [], []
    for g in groups:
        cs = load_group(g, size=max(cache_size, spec.input_size), margin=spec.crop_margin, **kw)
        keep = np.arange(len(cs)) if not subsets or g not in subsets else subsets[g]
        tf = transform or (lambda im: im)
        ims.append(np.stack([resize_to(tf(cs.images[i]), spec.input_size) for i in keep]))
        ys.append(cs.labels[keep])
        gs += [g] * len(keep)
    return np.concatenate(ims), np.concatenate(ys), np.asarray(gs)


def verdict_shares(labels: np.ndarray, probs: np.ndarray, threshold: float,
                   band: float | None = None) -> dict[str, dict[str, float]]:
    """Share of FAKE / UNCERTAIN / REAL verdicts among the real and among the fake
    items, at the tool's uncertain band around ``threshold`` (what a user would
    have been told, crop by crop)."""
    from .aggregate import effective_band
    from .config import DECISION

    b = effective_band(threshold, DECISION.uncertain_band if band is None else band)
    out = {}
    for kind, sel in (("real", labels == 0), ("fake", labels == 1)):
        p = probs[sel]
        n = max(int(sel.sum()), 1)
        out[kind] = {"FAKE": float((p >= threshold + b).sum() / n), "REAL": float((p <= threshold - b).sum() / n),
                     "UNCERTAIN": float(((p > threshold - b) & (p < threshold + b)).sum() / n)}
    return out


def held_out_subsets(cards, data_root: Path | None = None) -> dict[str, np.ndarray]:
    """Groups that some member trained on in part, mapped to the indices none of
    them saw: with ``ffhq_frac`` > 0 in a card's training config, only the
    held-out quarter of the FFHQ photos; with ``gan_frac`` > 0, only the
    held-out quarter of each StyleGAN group (``training.data.synthetic_split``)."""
    from .training.data import DATA_ROOT, FFHQ_GROUP, GAN_GROUPS, list_group, synthetic_split

    def used(key: str) -> bool:
        return any(float((c.info.get("train_config") or {}).get(key) or 0) > 0 for c in cards)

    groups = ([FFHQ_GROUP] if used("ffhq_frac") else []) + (list(GAN_GROUPS) if used("gan_frac") else [])
    return {g: synthetic_split(g, len(list_group(g, data_root or DATA_ROOT)))[2] for g in groups}


def dfdc_held_out(data_root: Path | None = None) -> dict[str, np.ndarray]:
    """The held-out 15 % of the DFDC originals and their fakes (``training.data.dfdc_split``): no member
    trains or is chosen on them, whether or not it saw the rest of DFDC."""
    from .training.data import DATA_ROOT, DFDC_GROUPS, dfdc_split, list_group

    root = data_root or DATA_ROOT
    return {g: dfdc_split([p.name for p in list_group(g, root)], root)["held_out"] for g in DFDC_GROUPS}


def _gan_held_out(held: dict[str, Any] | None) -> bool:
    """Whether the generated faces were scored on their held-out quarter only
    (some member trained on the rest: ``--gan-frac``)."""
    from .training.data import GAN_GROUPS

    return any(g in GAN_GROUPS for g in held or {})


def evaluate_crops(ensemble, groups: Sequence[str], threshold: float, cache_size: int = 160,
                   data_root: Path | None = None, subsets: dict[str, np.ndarray] | None = None,
                   transform=None) -> dict[str, Any]:
    """Score every member and the ensemble on the crops of ``groups`` (only the
    indices in ``subsets[group]`` where given; each crop first passed through
    ``transform``, e.g. a degradation, where given).
    Returns {"labels", "groups", "probs": {name: (N,)}, "metrics": {name: {...}}}."""
    from .training.metrics import roc_auc, summarize

    probs: dict[str, np.ndarray] = {}
    labels = groups_arr = None
    for card in ensemble.cards:
        crops, y, g = _member_crops(card.spec, groups, cache_size, data_root, subsets, transform)
        t = time.time()
        out = ensemble.score_member(card.name, crops, with_cam=False, batch_size=32)
        print(f"{card.name}: {len(crops)} crops in {time.time() - t:.1f} s", flush=True)
        probs[card.name] = out.probs.astype(np.float64)
        labels, groups_arr = y, g
    probs[ENSEMBLE] = ensemble.combine(dict(probs))
    metrics = {}
    for name, p in probs.items():
        # each member alone decides at its own card threshold, the ensemble at the ensemble card's
        m = summarize(labels, p, threshold if name == ENSEMBLE else ensemble.threshold([name]))
        real = labels == 0
        per = {}
        for grp in sorted(set(groups_arr[labels == 1])):
            sel = groups_arr == grp
            per[grp.split("_", 2)[-1]] = roc_auc(np.r_[np.zeros(real.sum()), np.ones(sel.sum())], np.r_[p[real], p[sel]])
        m["auc_per_method"] = per
        m["mean_prob_real"] = float(p[real].mean())
        m["mean_prob_fake"] = float(p[~real].mean())
        if name == ENSEMBLE:
            m["verdicts"] = verdict_shares(labels, p, threshold)
        metrics[name] = m
    return {"labels": labels, "groups": groups_arr, "probs": probs, "metrics": metrics}


def evaluate_videos(weights, videos: Sequence[Path], frames: int, labels: Sequence[int]) -> dict[str, Any]:
    """Run the full pipeline on each video. Returns per-video rows and AUCs
    (ensemble, and per member from the report's per-model figures)."""
    from .pipeline import Detector
    from .training.metrics import roc_auc

    det = Detector.load(weights, device="cpu")
    rows = []
    for path, y in zip(videos, labels):
        t = time.time()
        rep = det.analyze(path, frames=frames, heatmaps=False)
        rows.append({"video": path.name, "label": int(y), "fake_probability": rep.fake_probability,
                     "verdict": rep.verdict, "reason": rep.reason, "models": dict(rep.models or {}),
                     "seconds": round(time.time() - t, 1)})
        print(f"{path.name}: {rep.verdict} {rep.fake_probability} ({rows[-1]['seconds']} s)", flush=True)
    ok = [r for r in rows if r["fake_probability"] is not None]
    out: dict[str, Any] = {"frames": frames, "videos": rows, "n_scored": len(ok)}
    ys = np.array([r["label"] for r in ok])
    out["auc"] = {ENSEMBLE: roc_auc(ys, np.array([r["fake_probability"] for r in ok]))}
    for name in det.model_names:
        sc = [r["models"].get(name) for r in ok]
        if all(s is not None for s in sc):
            out["auc"][name] = roc_auc(ys, np.array(sc, float))
    return out


def plot_roc(labels: np.ndarray, probs: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .training.metrics import roc_auc, roc_curve

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    for name, p in probs.items():
        fpr, tpr, _ = roc_curve(labels, p)
        ax.plot(fpr, tpr, lw=2.5 if name == ENSEMBLE else 1.5, label=f"{name} (AUC {roc_auc(labels, p):.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate (fake caught)", title=title,
           xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_reliability(labels: np.ndarray, probs: dict[str, np.ndarray], path: Path, title: str, n_bins: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .training.metrics import expected_calibration_error, reliability_bins

    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5, 6.5), dpi=120, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    centers = (np.arange(n_bins) + 0.5) / n_bins
    for name, p in probs.items():
        conf, acc, count = reliability_bins(labels, p, n_bins)
        m = count > 0
        ax.plot(conf[m], acc[m], "o-", lw=2.5 if name == ENSEMBLE else 1.2,
                label=f"{name} (ECE {expected_calibration_error(labels, p):.3f})")
        axh.plot(centers, count, "-", lw=1.2)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(ylabel="fraction fake", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    axh.set(xlabel="predicted fake probability (calibrated)", ylabel="crops per bin")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


SOURCES_NOTE = ("Each source's fakes against its own reals, on data no member trained or was chosen on: "
                "faces/test for FF++, the held-out 15 % of DFDC originals with their fakes (split by original), "
                "the held-out quarters of synthetic/ (StyleGAN/StyleGAN2 against FFHQ photos).")


def sources_table(crops: dict | None, synth: dict | None, dfdc: dict | None, trained_on: dict[str, bool]) -> list[str]:
    """Markdown rows: per held-out source, the AUC of the ensemble and of each member, and whether any
    member trained on (another part of) that source."""
    rows = [("FaceForensics++ (faces/test)", "ffpp", crops), ("DFDC (held-out originals)", "dfdc", dfdc),
            ("Generated faces vs FFHQ (held-out)", "gan", synth)]
    rows = [r for r in rows if r[2]]
    if not rows:
        return []
    names = list(rows[0][2]["metrics"])
    out = ["### Across sources", "", SOURCES_NOTE, "",
           "| source | n | trained on another part of it | " + " | ".join(f"AUC {n}" for n in names) + " |",
           "|---|---|---|" + "---|" * len(names)]
    for title, key, res in rows:
        out.append(f"| {title} | {res['metrics'][names[0]]['n']} | {'yes' if trained_on.get(key) else 'no'} | "
                   + " | ".join(f"{res['metrics'][n]['auc']:.3f}" for n in names) + " |")
    return out + [""]


def trained_on_sources(cards) -> dict[str, bool]:
    """Which sources some member trained on: FF++ always; DFDC with ``dfdc_frac`` > 0; generated faces
    with ``gan_frac`` > 0."""
    def used(key: str) -> bool:
        return any(float((c.info.get("train_config") or {}).get(key) or 0) > 0 for c in cards)

    return {"ffpp": True, "dfdc": used("dfdc_frac"), "gan": used("gan_frac")}


def _markdown(crops: dict | None, synth: dict | None, videos: dict | None, threshold: float,
              dfdc: dict | None = None, trained_on: dict[str, bool] | None = None) -> str:
    lines = sources_table(crops, synth, dfdc, trained_on or {})
    held = (synth or {}).get("held_out") or {}
    if not held:
        synth_title = "Out of domain: synthetic/ (StyleGAN fakes vs FFHQ photos, never trained on)"
    elif not _gan_held_out(held):
        synth_title = ("synthetic/ (StyleGAN fakes, never trained on, vs the held-out quarter of the FFHQ photos; "
                       "members trained on another half)")
    else:
        synth_title = ("synthetic/, held-out quarters only (StyleGAN fakes and FFHQ photos; members trained on "
                       "another half of each)")
    dfdc_title = "DFDC faces, the held-out 15 % of originals with their fakes"
    for title, res in (("Face crops, faces/test", crops), (synth_title, synth), (dfdc_title, dfdc)):
        if not res:
            continue
        lines += [f"### {title}", "", f"Ensemble threshold {threshold} on the calibrated fake probability; "
                  "each member alone at its own card threshold.", "",
                  "| model | n | AUC | accuracy | balanced acc. | log-loss | ECE | TP | FP | TN | FN | AUC per method |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, m in res["metrics"].items():
            c = m["confusion"]
            per = ", ".join(f"{k} {v:.3f}" for k, v in m["auc_per_method"].items())
            lines.append(f"| {name} | {m['n']} | {m['auc']:.3f} | {m['accuracy']:.3f} | {m['balanced_accuracy']:.3f} | "
                         f"{m['log_loss']:.3f} | {m['ece']:.3f} | {c['tp']} | {c['fp']} | {c['tn']} | {c['fn']} | {per} |")
        v = res["metrics"].get(ENSEMBLE, {}).get("verdicts")
        if v:
            share = lambda d: ", ".join(f"{d[k]:.0%} {k}" for k in ("FAKE", "UNCERTAIN", "REAL"))  # noqa: E731
            lines += ["", "What a user would be told, crop by crop (ensemble, the app's uncertain band): "
                      f"real faces {share(v['real'])}; fake faces {share(v['fake'])}."]
        lines.append("")
    if videos:
        aucs = ", ".join(f"{k} {_fmt(v)}" for k, v in videos["auc"].items())
        lines += [f"### Videos through the full pipeline ({videos['frames']} frames each)", "",
                  f"Video-level AUC ({videos['n_scored']} videos scored): {aucs}", "",
                  "| video | label | fake probability | verdict | per model |", "|---|---|---|---|---|"]
        for r in videos["videos"]:
            per = ", ".join(f"{k} {v:.3f}" for k, v in r["models"].items())
            p = "-" if r["fake_probability"] is None else f"{r['fake_probability']:.3f}"
            lines.append(f"| {r['video']} | {'fake' if r['label'] else 'real'} | {p} | {r['verdict']} | {per} |")
        lines.append("")
    return "\n".join(lines)


def _strip(res: dict | None) -> dict | None:
    return None if res is None else {"metrics": res["metrics"]}


def main(argv: Sequence[str] | None = None) -> int:
    from .models import load_ensemble, resolve_weights_dir
    from .training.data import DATA_ROOT, SYNTHETIC_GROUPS, TEST_GROUPS

    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="weights directory or Hub id (default weights/)")
    ap.add_argument("--data", type=Path, default=DATA_ROOT, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=Path("runs/eval"))
    ap.add_argument("--frames", type=int, default=32, help="frames per video for the pipeline (the tool's default)")
    ap.add_argument("--no-crops", action="store_true")
    ap.add_argument("--no-videos", action="store_true")
    ap.add_argument("--max-videos", type=int, default=None, help="only the first N real and N fake videos (smoke runs)")
    ap.add_argument("--synthetic", action="store_true", help="also score synthetic/ (StyleGAN vs FFHQ)")
    ap.add_argument("--dfdc", action="store_true", help="also score the held-out part of dfdc_faces/")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-cards", action="store_true", help="add the test figures to the weights' model cards")
    ap.add_argument("--model-card", type=Path, default=None,
                    help="write a human-readable model card (Markdown) here, with the ROC and reliability plots "
                         "beside it (e.g. weights/README.md)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if not args.data.is_dir():
        print(f"shared data not found at {args.data}; nothing to evaluate")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    wdir = resolve_weights_dir(args.weights)
    ens = load_ensemble(wdir, "cpu")
    thr = round(ens.threshold(), 4)  # the ensemble card's threshold: what the tool decides with
    results: dict[str, Any] = {"weights": str(wdir), "members": ens.names, "threshold": thr,
                               "date": time.strftime("%Y-%m-%d")}
    crops = synth = videos = dfdc = None
    if not args.no_crops:
        crops = evaluate_crops(ens, TEST_GROUPS, thr, data_root=args.data)
        plot_roc(crops["labels"], crops["probs"], args.out / "roc_faces_test.png", "ROC, faces/test crops")
        plot_reliability(crops["labels"], crops["probs"], args.out / "reliability_faces_test.png",
                         "Reliability, faces/test crops")
        results["faces_test"] = _strip(crops)
    if args.synthetic:
        held = held_out_subsets(ens.cards, args.data)
        if held:
            print("synthetic/: images trained on by a member are left out: "
                  f"{', '.join(f'{g} {len(i)} held-out' for g, i in held.items())}", flush=True)
        synth = evaluate_crops(ens, SYNTHETIC_GROUPS, thr, data_root=args.data, subsets=held)
        synth["held_out"] = {g: len(i) for g, i in held.items()}
        gan_seen = _gan_held_out(held)
        plot_roc(synth["labels"], synth["probs"], args.out / "roc_synthetic.png",
                 "ROC, synthetic/ (held-out quarters)" if gan_seen else "ROC, synthetic/ (out of domain)")
        results["synthetic"] = _strip(synth)
    if args.dfdc:
        from .training.data import DFDC_GROUPS

        dfdc = evaluate_crops(ens, DFDC_GROUPS, thr, data_root=args.data, subsets=dfdc_held_out(args.data))
        plot_roc(dfdc["labels"], dfdc["probs"], args.out / "roc_dfdc.png", "ROC, DFDC held-out originals")
        results["dfdc_held_out"] = _strip(dfdc)
    if not args.no_videos:
        k = args.max_videos
        vids = sorted((args.data / "videos" / "real").glob("*.mp4"))[:k] + sorted((args.data / "videos" / "fake").glob("*.mp4"))[:k]
        labels = [0 if v.parent.name == "real" else 1 for v in vids]
        videos = evaluate_videos(wdir, vids, args.frames, labels)
        results["videos"] = videos
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    md = _markdown(crops, synth, videos, thr, dfdc, trained_on_sources(ens.cards))
    (args.out / "results.md").write_text(md)
    print(md)
    if args.write_cards:
        from .cards import write_test_metrics

        for card in ens.cards:
            test = {}
            if crops:
                test["faces_test"] = crops["metrics"][card.name]
                test["faces_test_ensemble"] = crops["metrics"][ENSEMBLE]
            if synth:
                key = "synthetic_held_out" if gan_seen else "synthetic_out_of_domain"
                test[key] = {k: synth["metrics"][card.name][k] for k in ("auc", "ece", "n")}
                test[key + "_ensemble"] = {k: synth["metrics"][ENSEMBLE][k] for k in ("auc", "ece", "n")}
            if dfdc:
                test["dfdc_held_out"] = {k: dfdc["metrics"][card.name][k] for k in ("auc", "ece", "n")}
                test["dfdc_held_out_ensemble"] = {k: dfdc["metrics"][ENSEMBLE][k] for k in ("auc", "ece", "n")}
            if videos:
                test["videos"] = {"frames": videos["frames"], "auc_ensemble": videos["auc"].get(ENSEMBLE),
                                  "auc_member": videos["auc"].get(card.name)}
            write_test_metrics(Path(wdir) / f"{card.name}.json", test, EVALUATE_COMMAND)
        print(f"wrote test figures into {len(ens.cards)} card(s) in {wdir}")
    if args.model_card:
        import shutil

        from .cards import model_card_markdown, read_cards

        args.model_card.parent.mkdir(parents=True, exist_ok=True)
        for png in ("roc_faces_test.png", "reliability_faces_test.png"):
            if (args.out / png).exists():
                shutil.copy(args.out / png, args.model_card.parent / png)
        args.model_card.write_text(model_card_markdown(read_cards(wdir), ens.ensemble_card, md, results["date"],
                                                          EVALUATE_COMMAND))
        print(f"wrote {args.model_card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
