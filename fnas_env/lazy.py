"""Lazy package attributes: a name is imported from its module when first used."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose names live in ``homes``.

    Args:
        package: the package's name (for the error message).
        homes: public name -> the module that defines it.

    Example:
        >>> homes = {"UncertaintyCritic": "wrappers.critic"}
        >>> __getattr__, __dir__ = lazy_attributes(__name__, homes)
    """

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(homes[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
