"""A pin: one line of a hashed constraints file, as lock writes it and builds read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """One line of a constraints file: an exact version and the hashes it may have."""

    name: str
    version: str
    hashes: tuple[str, ...]
    marker: str = ""
