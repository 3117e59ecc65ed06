"""Which device to train on, as a `torch.device` and as Lightning's accelerator name."""

from __future__ import annotations

import torch

ACCELERATORS = {"cuda": "gpu", "mps": "mps", "cpu": "cpu"}
_default: list[str | None] = [None]  # what `use_device` set; None: `select_device()` decides


def use_device(name: str) -> tuple[torch.device, str]:
    """Make `name` the device `fit` trains on when not told otherwise: `"cpu"`, `"cuda"`,
    `"mps"`, or `"auto"` (`select_device()`'s choice). Notebooks call it with their `DEVICE`
    parameter, `"cpu"` by default, so that their saved outputs reproduce on any machine."""
    chosen = select_device() if name == "auto" else check_available(name)
    _default[0] = None if name == "auto" else name
    return chosen


def default_device() -> tuple[torch.device, str]:
    """The device `use_device` chose, else `select_device()`'s."""
    return select_device(_default[0])


def select_device(
    requested: str | None = None, *, allow_mps: bool = False
) -> tuple[torch.device, str]:
    """CUDA when available, else the CPU; Apple's MPS only with `allow_mps=True` or by name.

    MPS is opt-in because it measured about 5x slower than the CPU on these small models.
    """
    if requested is not None:
        return check_available(requested)
    if torch.cuda.is_available():
        return torch.device("cuda"), "gpu"
    if allow_mps and torch.backends.mps.is_available():
        return torch.device("mps"), "mps"
    return torch.device("cpu"), "cpu"


def check_available(requested: str) -> tuple[torch.device, str]:
    """The named device, or an error saying why it cannot be used here."""
    if requested not in ACCELERATORS:
        raise ValueError(f"Unknown device {requested!r}; expected one of {list(ACCELERATORS)}.")
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if not available[requested]:
        raise RuntimeError(
            f"Device {requested!r} was asked for but is not available on this machine."
        )
    return torch.device(requested), ACCELERATORS[requested]
