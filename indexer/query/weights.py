"""Fitted parameters shipped as JSON data files (answer, confidence and fusion weights).

Each file is written by the command that fits it and read when a searcher or
answerer is built; nothing fitted is pasted into code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from indexer.errors import ResourceMissing

T = TypeVar("T")


def read_weights(path: str | Path, what: str, writer: str, parse: Callable[[dict], T]) -> T:
    """`parse` applied to the JSON object in `path`, or ResourceMissing naming the file, what is wrong
    with it and the fix: reinstall the package, or run `writer` (the command that writes `what`)."""
    path = Path(path)
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResourceMissing(
            f"cannot read the {what} at {path} ({exc}): reinstall the package, or write them with {writer}"
        ) from None
