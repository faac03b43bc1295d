"""Does the framing of the shared FF++ crops (tight face boxes, whose margin crop_face then fills by edge
reflection) push real faces towards FAKE? (notes/experiments/2026-12-07-false-alarms/)

faces/test's real crops are 299 px tight face boxes: when they are re-cut at the models' margin (0.3),
the border is a mirror image of the face, not the scene around it. In the app, faces in photos and videos
usually have their real surroundings. This scores the same faces both ways, on frames of the 13 shared
videos (sampled and decoded as the app does, ``media.load_video``) (their labels are known; the FF++ ones are the videos faces/ was cut from, in c23):
  A: as the app cuts them (``crop_face`` at the member's margin, from the full frame);
  B: as the shared FF++ crops were made: a square of the face box's side / ``tightness`` around the
     box, resized to 299 px, then re-detected and cut at the member's margin (the crop cache's way).
``tightness`` is the median ratio of the MTCNN box's longer side to the crop on faces/train's FF++
originals (measured here). The shipped ensemble scores both; printed: per video the mean calibrated
probability A and B, and the frames called FAKE each way (the app's band and disagreement rule,
``false_alarms.verdicts``). MTCNN's boxes are clipped to the image, so a measured tightness of 1.00 is a
ceiling: the shared crops may be tighter still, and B then has more real surroundings than they do.

  .venv/bin/python notes/scripts/reflect_padding.py [--frames 8] [--out notes/logs/reflect_padding.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    from PIL import Image

    from false_alarms import verdicts
    from deepfake_demo.faces import crop_face, detect_faces, load_face_detector
    from deepfake_demo.media import load_video
    from deepfake_demo.models import load_ensemble, resolve_weights_dir
    from deepfake_demo.training.data import DATA_ROOT

    torch.set_num_threads(args.threads)
    det = load_face_detector("cpu")

    def biggest(img):
        faces = detect_faces(det, img)
        return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])).box if faces else None

    # how tight the shared FF++ crops are: MTCNN box side / crop side
    ratios = []
    for p in sorted((DATA_ROOT / "faces/train/real/ffpp").glob("*.jpg"))[:60]:
        img = np.asarray(Image.open(p).convert("RGB"))
        b = biggest(img)
        if b is not None:
            ratios.append(max(b[2] - b[0], b[3] - b[1]) / img.shape[1])
    tight = float(np.median(ratios))
    side_margin = 1.0 / tight - 1.0  # B's square: the face box's side / tightness

    ens = load_ensemble(resolve_weights_dir(args.weights), "cpu")
    thr = ens.threshold()
    rows, all_p = [], {"real": {"A": [], "B": []}, "fake": {"A": [], "B": []}}
    for label in ("real", "fake"):
        for video in sorted((DATA_ROOT / "videos" / label).glob("*.mp4")):
            crops = {name: ([], []) for name in ens.names}
            for frame in (f.image for f in load_video(video, n_frames=args.frames).frames):  # as the app samples
                box = biggest(frame)
                if box is None:
                    continue
                # B's source: the tight square the shared FF++ crops are, at 299 px, then re-detected
                ffpp_like = crop_face(frame, box, side_margin, 299)
                box_b = biggest(ffpp_like)
                if box_b is None:
                    continue
                for card in ens.cards:
                    m, s = card.spec.crop_margin, card.spec.input_size
                    crops[card.name][0].append(crop_face(frame, box, m, s))
                    crops[card.name][1].append(crop_face(ffpp_like, box_b, m, s))
            if not crops[ens.names[0]][0]:
                continue
            probs, called = {}, {}
            for way in (0, 1):
                member = {name: ens.score_member(name, np.stack(c[way]), with_cam=False, batch_size=32).probs
                          for name, c in crops.items()}
                probs["AB"[way]] = ens.combine(member)
                called["AB"[way]] = verdicts(probs["AB"[way]], np.stack([member[n] for n in ens.names]), thr) == "FAKE"
            row = {"video": video.name, "label": label, "frames": int(len(probs["A"]))}
            for way, p in probs.items():
                all_p[label][way].extend(p.tolist())
                row[f"mean_p_{way}"] = round(float(np.mean(p)), 3)
                row[f"fake_frames_{way}"] = int(called[way].sum())
            rows.append(row)
            print(row, flush=True)
    out = {"weights": str(args.weights), "tightness_median": round(tight, 3), "tightness_n": len(ratios),
           "frames_per_video": args.frames, "videos": rows}
    for label in ("real", "fake"):
        sel = [r for r in rows if r["label"] == label]
        n = sum(r["frames"] for r in sel)
        out[f"{label}_frames"] = n
        # frame-weighted: every frame counts once, whatever its video's length
        out[f"{label}_mean_p"] = {w: round(float(np.mean(all_p[label][w])), 3) for w in "AB"}
        out[f"{label}_fake_frames"] = {w: sum(r[f"fake_frames_{w}"] for r in sel) for w in "AB"}
    print(json.dumps({k: v for k, v in out.items() if k != "videos"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
