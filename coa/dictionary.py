"""The pyrad dictionary radbill's own RADIUS clients use (CoA/Disconnect, the NAS simulator)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pyrad.dictionary import Dictionary

PATH = Path(__file__).with_name("dictionary")


@cache
def dictionary() -> Dictionary:
    """The dictionary, parsed once per process."""
    return Dictionary(str(PATH))
