"""Is a member's split the same at another crop size? (notes/experiments/2026-12-07-lite2-224/)

A run at ``--cache-size 224`` reads crops cut at 224 px from the same detections as the 160 px cache, but
``--ffpp-drop-twins`` and validation's untwinned mask are computed from the crops themselves (their
thumbnails), so a pair near the cut could fall the other way. This rebuilds a card's split (its
``train_config``) at each ``--sizes`` and says whether validation's labels and groups, the untwinned mask
and every group's train/val/dropped-twin counts are the same, and how many crops the face mesh outlined.

  .venv/bin/python notes/scripts/split_sizes.py [--card weights/tf_efficientnet_lite2.json] [--sizes 160 224] [--out notes/logs/split_sizes_lite2_224.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--card", type=Path, default=Path("weights/tf_efficientnet_lite2.json"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from deepfake_demo.training.config import TrainConfig
    from deepfake_demo.training.dataset import TWIN_CUT, load_train_data, untwinned_val_mask

    base = TrainConfig.from_dict(json.loads(args.card.read_text())["train_config"])
    splits = {}
    for s in args.sizes:
        cfg = replace(base, input_size=s, cache_size=s)
        d = load_train_data(cfg)
        splits[s] = (d, untwinned_val_mask(cfg, d.val_groups, TWIN_CUT))
    (d0, k0), out = splits[args.sizes[0]], {}
    for s, (d, keep) in splits.items():
        counts = {g: c for g, c in d.counts.items() if g != "mesh_found"}
        out[s] = {"val": int(len(d.val_labels)), "val_fake": int(d.val_labels.sum()),
                  "untwinned_left_out": int((~keep).sum()), "mesh_found": d.counts.get("mesh_found"),
                  "same_val_labels_and_groups": bool(np.array_equal(d.val_labels, d0.val_labels)
                                                     and list(d.val_groups) == list(d0.val_groups)),
                  "same_untwinned_mask": bool(np.array_equal(keep, k0)),
                  "same_group_counts": counts == {g: c for g, c in d0.counts.items() if g != "mesh_found"}}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
