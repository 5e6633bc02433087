"""Files that a killed process never leaves half-written, and JSON of result values.

Pure Python (no torch): callers pass the function that writes the data.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_json", "jsonable"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], fsync: bool = True) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it.

    A process killed at any moment leaves either the old file or the new one. The
    temporary name keeps ``path``'s suffix (``torch.export.save`` wants ``.pt2``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(path.parent / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """``data`` (made :func:`jsonable`) as indented JSON, atomically."""
    text = json.dumps(jsonable(data), indent=1, allow_nan=False, default=str) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def jsonable(value: Any) -> Any:
    """``value`` with dict keys as strings, tuples as lists, non-finite floats as None and
    numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy / torch scalar
        return jsonable(value.item())
    return value
