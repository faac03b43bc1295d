"""Training steps per second on this CPU: fp32 against bf16 autocast, each with and without
channels-last (notes/experiments/2026-12-05-imagenet-xception; the reason ``--cpu-bf16`` exists).

Random weights and inputs (speed does not depend on them): one warm-up step, then the fastest of
``--steps`` steps of AdamW on a one-logit BCE, batch 32. bf16 pays where the CPU has AMX
(``grep amx_bf16 /proc/cpuinfo``).

  .venv/bin/python notes/scripts/train_step_speed.py legacy_xception tf_efficientnet_lite0 --threads 1
"""
from __future__ import annotations

import argparse
import json
import time


def step_speed(arch: str, size: int, batch: int, steps: int, bf16: bool, channels_last: bool) -> float:
    """Images per second of the fastest training step."""
    import timm
    import torch
    import torch.nn.functional as F

    model = timm.create_model(arch, pretrained=False, num_classes=1).train()
    x, y = torch.randn(batch, 3, size, size), torch.rand(batch, 1)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = F.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch / min(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="+")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for arch in args.archs:
        row = {"arch": arch, "threads": args.threads}
        for bf16 in (False, True):
            for cl in (False, True):
                key = ("bf16" if bf16 else "fp32") + ("_channels_last" if cl else "")
                row[key] = round(step_speed(arch, args.size, args.batch, args.steps, bf16, cl), 1)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
