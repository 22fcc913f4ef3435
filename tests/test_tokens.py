"""tiktoken encodings work offline, from the packaged BPE files, after a hash check."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from indexer.errors import InvalidParameter
from indexer.tokens import _SHA256, _URL, count_tokens, seed_cache


def test_expected_hashes_match_tiktokens_own():
    import inspect

    import tiktoken_ext.openai_public as public

    source = inspect.getsource(public)
    for digest in _SHA256.values():
        assert digest in source


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_seeded_cache_is_verified_and_named_as_tiktoken_expects(tmp_path, monkeypatch, name):
    monkeypatch.setenv("NEWSQA_CACHE_DIR", str(tmp_path))
    directory = seed_cache(name)
    target = directory / hashlib.sha1(_URL.format(name=name).encode()).hexdigest()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == _SHA256[name]
    # A corrupted cache file is replaced, not trusted.
    target.write_bytes(b"garbage")
    seed_cache(name)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == _SHA256[name]


def test_encoding_loads_in_a_process_with_no_network(tmp_path):
    # A fresh interpreter with an empty cache and every proxy pointing nowhere: the
    # encoding must come from the packaged file, not a download.
    code = (
        "from indexer.tokens import get_encoding;"
        "e = get_encoding('cl100k_base'); print(len(e.encode('Toktogul water levels')))"
    )
    env = {"NEWSQA_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "PYTHONPATH": "."}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == count_tokens("Toktogul water levels")


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(InvalidParameter, match="cl100k_base, o200k_base"):
        seed_cache("p50k_whatever")
