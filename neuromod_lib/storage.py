"""Crash-safe writing: results and checkpoints are written to a temporary file, then renamed.

A reader never sees a half-written file: `os.replace` is atomic on POSIX and Windows when
source and target lie on the same file system, so the temporary file is created beside
the target. A written file gets the mode an ordinary ``open(path, "w")`` would give it
(``0o666`` less the process umask, 0644 by default), not the private 0600 of a temporary
file, so a shared results folder stays readable to collaborators.

Reading back, a truncated or corrupted file is a ``ValueError`` that names it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch


def _umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success give it the umask's mode, rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then rename it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float, in any nesting of dicts, lists and tuples, made None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(value) for value in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON, keys in insertion order (deterministic).

    NaN and infinities are written as ``null``: Python's ``json`` would write the bare ``NaN`` and
    ``Infinity`` that are not JSON, and that other readers (JavaScript, jq) refuse.
    """
    text = json.dumps(_finite_or_none(obj), indent=2, allow_nan=False)
    return write_text(path, text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; ``ValueError`` naming the file if it is not valid JSON (truncated, corrupted).

    What its top level must be (a dict of metrics, say) is for the caller to check.
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as err:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{str(p)!r} is not valid JSON (truncated or corrupted?): {err}") from err


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Atomically ``torch.save`` a dict of tensors, numbers, strings, lists and dicts."""
    return write_atomic(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code is unpickled).

    ``FileNotFoundError`` if it does not exist; ``ValueError`` naming it if it cannot be read
    (truncated by a crash or a full disk, corrupted, not a checkpoint, or holding code).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint={str(p)!r} does not exist")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except Exception as err:  # torch raises RuntimeError, OSError, EOFError, UnpicklingError, ...
        raise ValueError(
            f"checkpoint={str(p)!r} cannot be read (truncated, corrupted or not a checkpoint): "
            f"{type(err).__name__}: {_first_sentence(err)}"
        ) from err


def _first_sentence(err: Exception) -> str:
    """The first sentence of an error's message (torch's run over several lines), for a one-line error."""
    text = " ".join(str(err).split())
    if not text:
        return "the file ends too early" if isinstance(err, EOFError) else "no message"
    return text.split(". ")[0]
