"""Environment settings the core reads, each declared once here.

Service and CLI settings are declared in `service.app.ServiceSettings`; these are the
ones below the service, read wherever the core needs them.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NEWSQA_CACHE_DIR"


def cache_root() -> Path:
    """Where derived files live (the ONNX export, tiktoken's BPE files, evaluation indexes and
    embeddings): `$NEWSQA_CACHE_DIR`, else `~/.cache/newsqa`. Never the repository or a dataset."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "newsqa")
