"""Which faces/test real faces does the shipped ensemble call FAKE: one member or both, scattered or
clustered? (notes/experiments/2026-12-07-false-alarms/)

Scores faces/test's 201 FF++ originals with the shipped ensemble (the crops ``evaluate`` uses) and gives:
the app's verdict per crop (the uncertain band and the members' disagreement rule); each member's FAKE share
at its own card threshold; the originals grouped by thumbnail correlation >= 0.95 (near-identical frames, roughly videos:
notes/experiments/2026-12-07-ffpp-video-groups/) with how many groups hold a FAKE call and how often the
crops of one group agree, with the FAKE share's 95 % interval resampled by group and by crop; and the face
detail (``faces.face_detail``, the soft-face warning's measure) and brightness of FAKE-called crops against REAL-called ones. It measures; nothing is chosen on faces/test.
``--sheet`` also writes a contact sheet of the crops by verdict under runs/ (data: never commit it).

  .venv/bin/python notes/scripts/false_alarms.py [--weights weights] [--out notes/logs/false_alarms.json] [--sheet runs/false_alarms.png]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ffpp_groups import components  # noqa: E402

GROUP = "test_real_ffpp"


def verdicts(p: np.ndarray, member_p: np.ndarray | None, threshold: float) -> np.ndarray:
    """The app's verdict for each crop (``aggregate.decide`` with the app's band and disagreement setting):
    ``p`` the ensemble's probabilities, ``member_p`` (members, N) the members' (None: the band alone)."""
    from deepfake_demo.aggregate import decide
    from deepfake_demo.config import DECISION

    def members(i: int) -> dict[str, float] | None:
        return None if member_p is None else {str(k): float(m[i]) for k, m in enumerate(member_p)}

    return np.array([decide(float(p[i]), threshold, DECISION.uncertain_band, members(i), DECISION.disagreement)[0]
                     for i in range(len(p))])


def group_figures(labels: np.ndarray, v: np.ndarray) -> dict:
    """Per video group: how many groups hold a FAKE call, and in groups of 2+ crops how often all agree."""
    ids = np.unique(labels)
    multi = [g for g in ids if (labels == g).sum() >= 2]
    agree = [len(set(v[labels == g])) == 1 for g in multi]
    fake_groups = [g for g in ids if (v[labels == g] == "FAKE").any()]
    all_fake = [g for g in ids if (v[labels == g] == "FAKE").all()]
    all_fake_multi = [g for g in multi if (v[labels == g] == "FAKE").all()]
    fake_multi = [g for g in multi if (v[labels == g] == "FAKE").any()]
    # chance agreement if verdicts fell independently with the same shares
    shares = {k: float((v == k).mean()) for k in ("FAKE", "UNCERTAIN", "REAL")}
    chance = float(np.mean([sum(s ** int((labels == g).sum()) for s in shares.values()) for g in multi])) if multi else None
    return {"groups": int(len(ids)), "groups_with_2plus": len(multi),
            "groups_with_a_fake_call": len(fake_groups), "groups_all_fake": len(all_fake),
            "groups_2plus_with_a_fake_call": len(fake_multi), "groups_2plus_all_fake": len(all_fake_multi),
            "agreeing_share_of_2plus": round(float(np.mean(agree)), 3) if multi else None,
            "agreeing_share_by_chance": round(chance, 3) if chance is not None else None}


def share_interval(groups: np.ndarray, called: np.ndarray, n: int = 2000, seed: int = 0) -> list[float]:
    """95 % interval of the share of ``called`` crops, resampling whole groups (videos) with replacement:
    crops of one video are not independent draws."""
    rng = np.random.default_rng(seed)
    ids = np.unique(groups)
    members = [np.nonzero(groups == g)[0] for g in ids]
    shares = []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))])
        shares.append(called[idx].mean())
    return [round(float(q), 3) for q in np.percentile(shares, [2.5, 97.5])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sheet", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from deepfake_demo.evaluate import _member_crops
    from deepfake_demo.faces import face_detail
    from deepfake_demo.models import load_ensemble, resolve_weights_dir
    from deepfake_demo.training.data import load_group, thumbnails

    torch.set_num_threads(args.threads)
    ens = load_ensemble(resolve_weights_dir(args.weights), "cpu")
    thr = ens.threshold()
    probs = {}
    for card in ens.cards:
        crops, _, _ = _member_crops(card.spec, [GROUP], 160, None)
        probs[card.name] = ens.score_member(card.name, crops, with_cam=False, batch_size=32).probs.astype(np.float64)
    p = ens.combine(dict(probs))
    member_p = np.stack([probs[n] for n in ens.names])
    v = verdicts(p, member_p, thr)
    band_alone = verdicts(p, None, thr)
    split = (v == "UNCERTAIN") & (band_alone != "UNCERTAIN")  # made UNCERTAIN by the members' disagreement

    cs = load_group(GROUP, size=160, margin=0.3)
    t = thumbnails(cs.images)
    groups = components(t @ t.T, 0.95)
    detail = np.array([face_detail(im) for im in cs.images])
    bright = cs.images.reshape(len(cs.images), -1).mean(1)

    def summary(x: np.ndarray, sel: np.ndarray) -> dict:
        return {"n": int(sel.sum()), "median": round(float(np.median(x[sel])), 2) if sel.any() else None}

    out = {"weights": str(args.weights), "threshold": thr, "n": int(len(p)),
           "verdicts": {k: int((v == k).sum()) for k in ("FAKE", "UNCERTAIN", "REAL")},
           "split_by_disagreement_outside_the_band": int(split.sum()),
           "split_that_the_band_alone_calls_fake": int((split & (band_alone == "FAKE")).sum()),
           "member_fake_share_at_own_threshold": {n: round(float((probs[n] >= ens.threshold([n])).mean()), 3)
                                                  for n in ens.names},
           "fake_calls_each_member_at_or_above_0.5": {n: int(((v == "FAKE") & (probs[n] >= 0.5)).sum()) for n in ens.names},
           "fake_calls_both_members_at_or_above_0.5": int(((v == "FAKE") & (member_p >= 0.5).all(0)).sum()),
           "by_video_group_0.95": group_figures(groups, v),
           "fake_share": round(float((v == "FAKE").mean()), 3),
           "fake_share_ci95_resampled_by_group": share_interval(groups, v == "FAKE"),
           "fake_share_ci95_resampled_by_crop": share_interval(np.arange(len(v)), v == "FAKE"),
           "face_detail": {k: summary(detail, v == k) for k in ("FAKE", "UNCERTAIN", "REAL")},
           "brightness": {k: summary(bright, v == k) for k in ("FAKE", "UNCERTAIN", "REAL")}}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.sheet:
        import cv2

        rows = []
        for k in ("FAKE", "REAL"):
            idx = np.argsort(-p if k == "FAKE" else p)[:12]
            tiles = [cv2.putText(cs.images[i].copy(), f"{p[i]:.2f}", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                                 (255, 255, 0), 2) for i in idx]
            rows.append(np.concatenate(tiles, 1))
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
