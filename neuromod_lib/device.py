"""Which device to compute on, and how to make runs repeatable.

``pick_device("auto")`` prefers ``cuda`` > ``mps`` > ``cpu``; the environment variable
``NEUROMOD_DEVICE`` overrides the automatic choice (handy on shared GPU machines).
Asking for a device that is not there is an error, never a silent fallback: a paper run
that quietly lands on the CPU would take days.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def available_devices() -> list[str]:
    """Names of the devices this machine can use, best first (``cpu`` is always last)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names + ["cpu"]


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    ``"auto"`` or ``None`` takes ``$NEUROMOD_DEVICE`` if set, else the best available.
    Raises ``ValueError`` naming the parameter, the bad value and what is allowed.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device is None or device == "auto":
        device = os.environ.get("NEUROMOD_DEVICE", "auto") or "auto"
        if device == "auto":
            return torch.device(available_devices()[0])
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(f"device={device!r} is not a device name; allowed: auto, cpu, cuda, cuda:N, mps")
    available = available_devices()
    wanted = "cuda:0" if device == "cuda" else device
    if wanted not in available:
        raise ValueError(
            f"device={device!r} is not available on this machine; available: {', '.join(available)} (or auto)"
        )
    return torch.device(wanted)


def describe_device(device: torch.device | str) -> str:
    """A one-line human description, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (2 threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a fresh CPU ``torch.Generator``.

    With ``deterministic=True`` torch is asked for deterministic algorithms, so that the
    same seed gives the same numbers on the CPU (GPUs are made as repeatable as they allow:
    ``warn_only`` keeps ops without a deterministic kernel usable there).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Draw from ``seed`` inside the block, on the CPU and on ``device``'s own generator only (no
    other GPU is touched, so a worker pinned to one GPU starts no context on the others), and put
    both generators back as they were afterwards: torch's global random state is left alone."""
    d = torch.device(device)
    index = (d.index if d.index is not None else torch.cuda.current_device()) if d.type == "cuda" else None
    cpu = torch.get_rng_state()
    own = torch.cuda.get_rng_state(index) if index is not None else None
    own = torch.mps.get_rng_state() if d.type == "mps" else own
    torch.random.default_generator.manual_seed(seed)
    if index is not None:
        with torch.cuda.device(index):
            torch.cuda.manual_seed(seed)
    elif d.type == "mps":
        torch.mps.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if index is not None:
            torch.cuda.set_rng_state(own, index)
        elif d.type == "mps":
            torch.mps.set_rng_state(own)


def prepare(device: str | torch.device | None, seed: int) -> torch.device:
    """What every notebook does once its parameters are resolved: pick the device
    (:func:`pick_device`) and seed every random draw (:func:`seed_everything`); return the device."""
    chosen = pick_device(device)
    seed_everything(seed)
    return chosen
