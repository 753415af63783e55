"""Local pretrained weights for any timm model (train setting pretrained_file): read safely, the first convolution
summed from RGB to the model's channels the way timm does, a classifier head of the wrong shape dropped."""
from __future__ import annotations

from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

from benchmark.config import file_sha256
from benchmark.errors import BenchmarkError

__all__ = ["load_pretrained"]


def _timm_module(model: nn.Module) -> tuple[str, nn.Module]:
    """The timm network inside a model entry (its state_dict prefix and the module)."""
    for name, module in model.named_modules():
        if hasattr(module, "pretrained_cfg") and hasattr(module, "get_classifier"):
            return (name + "." if name else ""), module
    raise BenchmarkError(f"{type(model).__name__} holds no timm network (pretrained_cfg + get_classifier); "
                         "pretrained_file needs a timm model")


def _names(cfg_value: object) -> tuple[str, ...]:
    if not cfg_value:
        return ()
    return (cfg_value,) if isinstance(cfg_value, str) else tuple(cfg_value)


def _read(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError for unsafe pickles, RuntimeError for junk
        raise BenchmarkError(f"pretrained_file {path} refused: not a plain weights file ({type(exc).__name__}); "
                             "save it with torch.save(model.state_dict(), path)") from None
    for wrapper in ("state_dict", "model"):  # training checkpoints often wrap the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BenchmarkError(f"pretrained_file {path} holds no state_dict of tensors; "
                             "save it with torch.save(model.state_dict(), path)")
    return state


def load_pretrained(model: nn.Module, path: str | Path, sha256: str | None) -> dict:
    """Load a local timm state_dict into model; returns what was done (file, sha256, adapted, dropped, unused keys).

    Every weight of the model outside its classifier must come from the file; keys the model does not have are
    left unused and listed (an entry may replace a layer, as zhou2021-vgg11 does VGG's pre-logits)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchmarkError(f"pretrained_file {path} not found; give the path of a local timm state_dict")
    actual = file_sha256(path)
    if sha256 is not None and actual != sha256:
        raise BenchmarkError(f"pretrained_file {path} changed since the run was planned (sha256 {actual[:12]}, "
                             f"planned {sha256[:12]}); run again so that the train stage is keyed on the new file")
    prefix, net = _timm_module(model)
    state, own = _read(path), net.state_dict()
    first = {n + ".weight" for n in _names(net.pretrained_cfg.get("first_conv"))}
    head = _names(net.pretrained_cfg.get("classifier"))
    adapted, dropped = [], []
    for key in list(state):
        if key not in own or state[key].shape == own[key].shape:
            continue
        if key in first and state[key].dim() == 4 and state[key].shape[0] == own[key].shape[0]:
            state[key] = adapt_input_conv(own[key].shape[1], state[key])  # RGB -> 1 channel: summed (timm)
            adapted.append(key)
        elif any(key == h or key.startswith(h + ".") for h in head):
            del state[key]  # e.g. ImageNet's 1000 classes: the model keeps its own new head
            dropped.append(key)
    try:
        result = net.load_state_dict(state, strict=False)  # size mismatches still raise
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        raise BenchmarkError(f"pretrained_file {path} does not fit {type(net).__name__}: {lines[-1][:200]}; "
                             "save the weights of the same timm architecture") from None
    missing = [k for k in result.missing_keys if not any(k == h or k.startswith(h + ".") for h in head)]
    if missing:  # weights left at random would pass for pretrained ones
        raise BenchmarkError(f"pretrained_file {path} does not fit {type(net).__name__}: it lacks key {missing[0]!r} "
                             f"({len(missing)} in all); save the weights of the same timm architecture")
    return {"file": path.name, "sha256": actual, "prefix": prefix.rstrip("."), "adapted_input_conv": adapted,
            "dropped_head": dropped,
            "unused": sorted(result.unexpected_keys)}  # layers the model entry replaced (e.g. VGG's pre-logits)
