"""Model cards, in one place: a member's card (:class:`ModelCard`, ``weights/<name>.json``) and the
ensemble's (:class:`EnsembleCard`, ``weights/ensemble.json``): read and validated (sha256, staleness),
written, and rendered as Markdown for readers (the app's Model card tab, ``weights/README.md``).

Cards are the one source of preprocessing, calibration and the figures a reader is shown. Nothing here
imports torch or gradio."""
from __future__ import annotations

import hashlib
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import ModelSpec, spec_from_card

__all__ = [
    "NoWeightsError",
    "WeightsError",
    "ModelCard",
    "EnsembleCard",
    "ENSEMBLE_CARD",
    "HOW_TO_GET_WEIGHTS",
    "sha256_file",
    "read_cards",
    "read_ensemble_card",
    "write_card",
    "write_ensemble_card",
    "card_threshold",
    "card_warnings",
    "reader_markdown",
    "reader_text",
    "set_reader_text",
    "READER_FIELDS",
    "read_loso",
    "write_test_metrics",
    "loso_markdown",
    "LOSO_FILE",
    "how_often_wrong",
    "model_card_markdown",
]

ENSEMBLE_CARD = "ensemble.json"
"""Calibration of the members together (no ``arch`` key, so not a member card)."""

HOW_TO_GET_WEIGHTS = (
    "train them with `python -m deepfake_demo.train` (see README, 'Training'), "
    "or point --weights / $DEEPFAKE_DEMO_WEIGHTS at a directory or Hugging Face Hub repo id that holds "
    "*.safetensors files with their model cards (*.json)"
)


class NoWeightsError(RuntimeError):
    """No trained weights were found where we looked."""


class WeightsError(RuntimeError):
    """Weights were found but cannot be trusted or loaded (bad card, hash mismatch)."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelCard:
    """One ensemble member as its card describes it."""

    name: str
    spec: ModelSpec
    weights_path: Path
    sha256: str
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def warning(self) -> str | None:
        w = self.info.get("warning")
        return str(w) if w else None


@dataclass(frozen=True)
class EnsembleCard:
    """How the members are combined: ``p = sigmoid(sum_m w_m * logit_m / T_m / temperature)`` with the
    weights ``w`` (equal where the card has none), then FAKE/REAL around ``threshold``."""

    members: tuple[str, ...]
    temperature: float
    threshold: float
    weights: Mapping[str, float] | None = None
    member_sha256: Mapping[str, str] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def fits(self, names: Sequence[str]) -> bool:
        """Whether this card was fitted for exactly these members."""
        return sorted(names) == list(self.members)

    def stale(self, cards: Sequence[ModelCard]) -> list[str]:
        """Members whose weights changed since this card was fitted."""
        return [c.name for c in cards if c.name in self.member_sha256 and self.member_sha256[c.name] != c.sha256]

    def weight(self, name: str) -> float:
        return float(self.weights[name]) if self.weights else 1.0 / len(self.members)

    @property
    def validation(self) -> Mapping[str, Any]:
        return self.info.get("validation") or {}


def card_warnings(cards: Sequence[ModelCard]) -> list[str]:
    """Each card's warning (e.g. test-only weights), as "name: warning"."""
    return [f"{c.name}: {c.warning}" for c in cards if c.warning]


def read_cards(weights_dir: str | os.PathLike, names: Sequence[str] | None = None) -> list[ModelCard]:
    """Model cards (``*.json`` with an ``arch`` key) in a directory, sorted by name.
    ``names`` selects members by card name or arch."""
    d = Path(weights_dir)
    cards: list[ModelCard] = []
    for p in sorted(d.glob("*.json")):
        try:
            info = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"model card {p.name} is not valid JSON: {exc}") from None
        if not isinstance(info, dict) or "arch" not in info:
            continue
        name = str(info.get("name") or p.stem)
        if names and name not in names and info["arch"] not in names:
            continue
        wfile = d / str(info.get("weights_file") or f"{p.stem}.safetensors")
        if not wfile.is_file():
            raise NoWeightsError(f"model card {p.name} names {wfile.name}, which is missing; {HOW_TO_GET_WEIGHTS}")
        if info.get("trained") is False:
            raise WeightsError(f"{p.name} describes untrained weights; refusing to give verdicts from them")
        try:
            spec = spec_from_card(info)
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"model card {p.name} is incomplete: {exc}") from None
        cards.append(ModelCard(name, spec, wfile, str(info.get("sha256", "")), info))
    if not cards:
        which = f" for {', '.join(names)}" if names else ""
        raise NoWeightsError(f"no trained weights found in {d}{which}; {HOW_TO_GET_WEIGHTS}")
    return cards


def read_ensemble_card(weights_dir: str | os.PathLike) -> EnsembleCard | None:
    """``ensemble.json`` in a weights directory, validated; None if absent."""
    p = Path(weights_dir) / ENSEMBLE_CARD
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
        members = tuple(sorted(str(m) for m in info["members"]))
        temperature, threshold = float(info["temperature"]), float(info["threshold"])
        weights = None
        if "weights" in info:  # fitted on validation; older cards have none (equal weights)
            weights = {str(k): float(v) for k, v in info["weights"].items()}
            if tuple(sorted(weights)) != members or min(weights.values()) < 0 or not sum(weights.values()) > 0:
                raise ValueError("weights must give each member a weight >= 0, not all zero")
        shas = {str(k): str(v) for k, v in (info.get("member_sha256") or {}).items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{ENSEMBLE_CARD} is not a valid ensemble card: {exc}") from None
    if not (temperature > 0 and 0 < threshold < 1):
        raise WeightsError(f"{ENSEMBLE_CARD}: temperature must be > 0 and threshold in (0, 1)")
    return EnsembleCard(members, temperature, threshold, weights, shas, info)


def write_card(path: str | os.PathLike, spec: ModelSpec, weights_file: str | os.PathLike, **info: Any) -> dict:
    """Write a JSON model card for ``weights_file`` (sha256 computed here)."""
    w = Path(weights_file)
    card = {
        "name": Path(path).stem,
        "arch": spec.arch,
        "input_size": spec.input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "interpolation": spec.interpolation,
        "crop_margin": spec.crop_margin,
        "temperature": spec.temperature,
        "threshold": spec.threshold,
        "weights_file": w.name,
        "sha256": sha256_file(w),
        **info,
    }
    Path(path).write_text(json.dumps(card, indent=2) + "\n")
    return card


def write_test_metrics(card_path: str | os.PathLike, test: Mapping[str, Any], evaluate_command: str) -> None:
    """Put held-out test figures (``test_metrics``) and the command that measured them into one member
    card; every other key stays as it was."""
    path = Path(card_path)
    info = json.loads(path.read_text())
    info["test_metrics"] = json.loads(json.dumps(test, default=float))
    info["evaluate_command"] = evaluate_command
    path.write_text(json.dumps(info, indent=2) + "\n")


def write_ensemble_card(weights_dir: str | os.PathLike, cards: Sequence[ModelCard], weights: Mapping[str, float],
                        temperature: float, threshold: float, **info: Any) -> Path:
    """Write ``weights_dir/ensemble.json`` for these members (their sha256 recorded, so a card fitted
    on other weights is refused later), and read it back through the validation a loader applies."""
    names = sorted(c.name for c in cards)
    card = {
        "kind": "ensemble",
        "members": names,
        "weights": {n: round(float(weights[n]), 4) for n in names},
        "temperature": round(float(temperature), 4),
        "threshold": round(float(threshold), 4),
        "rule": "p = sigmoid(sum_m w_m * logit_m / T_m / T_ensemble); FAKE/REAL around the threshold",
        "member_sha256": {c.name: c.sha256 for c in sorted(cards, key=lambda c: c.name)},
        **info,
    }
    out = Path(weights_dir) / ENSEMBLE_CARD
    out.write_text(json.dumps(card, indent=2, default=float) + "\n")
    read_ensemble_card(weights_dir)
    return out


def card_threshold(cards: Sequence[ModelCard], ens_card: EnsembleCard | None = None,
                   names: Sequence[str] | None = None) -> float:
    """The decision threshold when none is given, from the cards. For exactly
    the members the ensemble card was fitted on, its threshold; otherwise (a
    subset, or no ensemble card) the members' own thresholds combined like
    their probabilities (:func:`~deepfake_demo.aggregate.ensemble_probability`)."""
    from .aggregate import ensemble_probability

    chosen = [c for c in cards if not names or c.name in names]
    if ens_card is not None and ens_card.fits([c.name for c in chosen]):
        return float(ens_card.threshold)
    return float(ensemble_probability([np.array([c.spec.threshold]) for c in chosen])[0])


# ------------------------------------------------------------------ rendering

def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def _pct(x: Any) -> str:
    return f"{100 * float(x):.0f} %" if isinstance(x, (int, float)) else "-"


def _test(cards: Sequence[ModelCard]) -> Mapping[str, Any]:
    return (cards[0].info.get("test_metrics") or {}) if cards else {}


def how_often_wrong(cards: Sequence[ModelCard]) -> str | None:
    """The measured error rates on held-out face crops in plain counts (the cards' ``test_metrics``,
    written by ``python -m deepfake_demo.evaluate --write-cards``), or None where none were measured."""
    ens = _test(cards).get("faces_test_ensemble") or {}
    v = ens.get("verdicts")
    if not v:
        return None
    n = lambda x: f"{100 * float(x):.0f}"  # noqa: E731
    f, r = v["fake"], v["real"]
    return (f"On FaceForensics++ faces kept out of training: of 100 fake faces these models call about {n(f['FAKE'])} "
            f"FAKE, are unsure about {n(f['UNCERTAIN'])} and call {n(f['REAL'])} REAL; of 100 real faces they "
            f"wrongly call {n(r['FAKE'])} FAKE and are unsure about {n(r['UNCERTAIN'])}. On media from sources "
            "they were not trained on, expect them to do worse.")


READER_FIELDS = ("summary", "training_data", "limits", "intended_use")


def reader_text(cards: Sequence[ModelCard], ens_card: EnsembleCard | None) -> Mapping[str, str]:
    """The reader's text about the whole ensemble: the ensemble card's ``reader`` block where it fits
    these members (``python -m deepfake_demo.cards reader``), else the first member's card fields."""
    if ens_card is not None and ens_card.fits([c.name for c in cards]) and ens_card.info.get("reader"):
        return {k: str(v) for k, v in ens_card.info["reader"].items() if k in READER_FIELDS and v}
    first = cards[0].info if cards else {}
    return {k: str(first[k]) for k in READER_FIELDS if first.get(k)}


def set_reader_text(weights_dir: str | os.PathLike, text: Mapping[str, Any]) -> Path:
    """Put ``text`` (a mapping of :data:`READER_FIELDS` to plain strings) into ``weights_dir/ensemble.json``
    as its ``reader`` block; every other key stays as it was. Refuses unknown fields and non-strings."""
    bad = [k for k, v in text.items() if k not in READER_FIELDS or not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"reader text: unknown or empty field(s) {', '.join(map(str, bad))}; "
                         f"expected non-empty strings for {', '.join(READER_FIELDS)}")
    path = Path(weights_dir) / ENSEMBLE_CARD
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no ensemble card to add reader text to")
    card = json.loads(path.read_text())
    card["reader"] = dict(text)
    path.write_text(json.dumps(card, indent=2, default=float) + "\n")
    read_ensemble_card(weights_dir)
    return path


LOSO_FILE = "loso.json"  # beside the cards: python -m deepfake_demo.training.loso table --out weights/loso.json
# another member's recipe: loso_<member>.json (python -m deepfake_demo.training.loso --member <member> table)


def read_loso(weights_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The leave-one-source-out tables beside the cards (``loso.json``, then ``loso_<member>.json`` by name);
    a file that does not parse is left out."""
    d = Path(weights_dir)
    out = []
    for path in [d / LOSO_FILE] + sorted(d.glob("loso_*.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(res, dict):
            out.append(res)
    return out


def loso_markdown(results: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The card's section of the leave-one-source-out tables: per member's recipe, one row per source left
    out (a table may hold only some sources)."""
    tables = [r for r in results or () if r.get("rows")]
    if not tables:
        return []
    out = ["### On a source they never saw", "",
           "Short runs of a member's recipe (same start, same number of samples), one per source, each trained "
           "and chosen without that source, then scored on that source's held-out test data; a reference run "
           "trained on all of them. The gap between the two columns is what a kind of fake nobody trained on "
           "costs. The shipped members trained far longer, so their own figures are higher; expect a similar "
           "gap on media unlike their training data.", ""]
    for res in tables:
        title = res.get("member_title") or "EfficientNet-Lite0"  # tables written before loso named their member
        out += [f"**{title} recipe.**", "",
                "| source left out | n | AUC when left out | AUC when trained on |", "|---|---|---|---|"]
        for r in res["rows"]:
            out.append(f"| {r['title']} | {r['n']} | {_fmt(r['auc_left_out'])} | {_fmt(r['auc_trained_on'])} |")
        out += ["", f"From `{res.get('command', '')}`.", ""]
    return out


def reader_markdown(cards: Sequence[ModelCard], ens_card: EnsembleCard | None,
                    loso: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The Model card tab, for a reader: what the models were trained on, how often they are wrong (with
    the leave-one-source-out tables: ``loso``, else those beside the cards), where
    they fail; then, folded away, the technical card (members, calibration, training configuration) with
    its commands in code blocks."""
    if not cards:
        return "No model card: no weights are loaded."
    first = reader_text(cards, ens_card)
    out = ["### What these models are", ""]
    if any(c.warning for c in cards):
        out += [f"> **Warning: {c.name}: {c.warning}**" for c in cards if c.warning] + [""]
    if first.get("summary"):
        out += [str(first["summary"]), ""]
    if first.get("training_data"):
        out += ["**Trained on.** " + str(first["training_data"]), ""]
    test = _test(cards)
    wrong = how_often_wrong(cards)
    rows = []
    for key, title in (("faces_test_ensemble", "FaceForensics++ face swaps and re-enactments (faces/test)"),
                       ("dfdc_held_out_ensemble", "DFDC face swaps (held-out originals)"),
                       ("synthetic_held_out_ensemble", "StyleGAN-generated faces against real FFHQ photos "
                                                       "(held-out)")):
        if test.get(key):
            rows.append(f"| {title} | {_fmt(test[key].get('auc'))} | {_fmt(test[key].get('ece'))} | "
                        f"{test[key].get('n', '-')} |")
    if wrong or rows:
        out += ["### How often they are wrong", ""] + ([wrong, ""] if wrong else [])
    if rows:
        out += ["How to read the table: the ranking score (AUC) is the chance that a random fake face scores "
                "above a random real one (0.5 is a coin toss, 1.0 perfect); the calibration error (ECE) is how "
                "far the stated probabilities are off on average (0.10 = 10 points). Faces tested were kept "
                "out of training.", "",
                "| faces tested (never trained on) | ranking score (AUC) | calibration error (ECE) | faces |",
                "|---|---|---|---|", *rows, ""]
    out += loso_markdown(loso if loso is not None else read_loso(cards[0].weights_path.parent))
    if first.get("limits"):
        out += ["### Where they fail", "", str(first["limits"]), ""]
    if first.get("intended_use"):
        out += ["### Intended use", "", str(first["intended_use"]), ""]
    out += ["<details><summary>Technical card: members, calibration, training</summary>", ""]
    out += _member_table(cards, ens_card)
    texts = [str(c.info.get("description") or "") for c in cards]
    if len(set(texts)) == 1 and texts[0]:  # one text for all: once, not once per member
        out += ["", html.escape(texts[0])]
    for c, text in zip(cards, texts):
        out += [""] + ([f"`{c.name}`: {html.escape(text)}", ""] if len(set(texts)) > 1 and text else [])
        out.append(f"`{c.name}` weights `{c.weights_path.name}`, sha256 `{c.sha256[:16]}...`")
        if c.info.get("reproduce"):
            out += ["", "```bash", str(c.info["reproduce"]), "```"]
    if ens_card and ens_card.info.get("reproduce"):
        out += ["", "Ensemble fit:", "", "```bash", str(ens_card.info["reproduce"]), "```"]
    out += ["", "</details>"]
    return "\n".join(out)


def _member_table(cards: Sequence[ModelCard], ens_card: EnsembleCard | None) -> list[str]:
    fits = ens_card is not None and ens_card.fits([c.name for c in cards])
    out = ["| member | arch | input (px) | weight in the ensemble | temperature | validation AUC | validation AUC by "
           "source | training speed |", "|---|---|---|---|---|---|---|---|"]
    for c in cards:
        v = c.info.get("validation") or {}
        by = ", ".join(f"{k} {x:.3f}" for k, x in (v.get("auc_by_source") or {}).items()) or "-"
        w = f"{ens_card.weight(c.name):.2f}" if fits else "equal"
        speed = f"{c.info['train_img_per_s']} img/s" if c.info.get("train_img_per_s") else "-"
        out.append(f"| {c.name} | `{c.spec.arch}` | {c.spec.input_size} | {w} | {c.spec.temperature:g} | "
                   f"{_fmt(v.get('auc', '-'))} | {by} | {speed} |")
    if fits:
        v = ens_card.validation
        out += ["", f"Ensemble: {ens_card.info.get('rule', '')}; temperature {ens_card.temperature:g}, threshold "
                    f"{ens_card.threshold:g}; validation AUC {_fmt(v.get('auc', '-'))} "
                    f"({_fmt(v.get('auc_ffpp', '-'))} on its FF++ part alone), mean over sources "
                    f"{_fmt(v.get('auc_cross', '-'))}, ECE {_fmt(v.get('ece_before', '-'))} before and "
                    f"{_fmt(v.get('ece', '-'))} after its temperature (n = {v.get('n', '-')})."]
        if ens_card.info.get("threshold_rule"):
            out += ["", f"Threshold: {ens_card.info['threshold_rule']}"]
    return out


def model_card_markdown(cards: Sequence[ModelCard], ens_card: EnsembleCard | None, results_md: str,
                        date: str, evaluate_command: str) -> str:
    """``weights/README.md`` (also the Hub repo's card): the reader's card, then the full evaluation."""
    out = ["# Deepfake detector ensemble: model card", "",
           f"Members: {', '.join(f'`{c.name}` ({c.spec.input_size} px)' for c in cards)}. Evaluated {date} with "
           f"`{evaluate_command}`.", "", reader_markdown(cards, ens_card), ""]
    first = cards[0].info
    for key, title in (("license", "Licence"), ("changelog", "Changes")):
        val = first.get(key)
        if val:
            out += [f"## {title}", ""] + ([f"- {x}" for x in val] if isinstance(val, list) else [str(val)]) + [""]
    out += ["## Evaluation", "", results_md, "",
            "![ROC on faces/test](roc_faces_test.png) ![Reliability on faces/test](reliability_faces_test.png)", ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m deepfake_demo.cards reader WEIGHTS_DIR TEXT.json``: set the reader's text of the
    ensemble card (what the app's Model card tab and weights/README.md open with)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m deepfake_demo.cards", description=main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("reader", help="set the ensemble card's reader text from a JSON file")
    r.add_argument("weights_dir")
    r.add_argument("text_json")
    args = ap.parse_args(argv)
    try:
        out = set_reader_text(args.weights_dir, json.loads(Path(args.text_json).read_text()))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
