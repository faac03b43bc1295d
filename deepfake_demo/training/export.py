"""Write an ensemble member as safetensors + JSON model card."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import ModelSpec
from ..cards import write_card

__all__ = ["save_member"]


def save_member(model, spec: ModelSpec, out_dir: str | os.PathLike, name: str | None = None,
                half: bool = True, **info: Any) -> Path:
    """Save ``model``'s weights (fp16 by default, to halve the download) and its
    card to ``out_dir/<name>.safetensors`` and ``out_dir/<name>.json``.
    Returns the card path. Extra keyword arguments go into the card."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or spec.arch
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu()
             for k, v in model.state_dict().items()}
    wpath = out / f"{name}.safetensors"
    save_file(state, str(wpath), metadata={"arch": spec.arch})
    card = out / f"{name}.json"
    write_card(card, spec, wpath, **info)
    return card
