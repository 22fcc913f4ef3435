"""Retrieval backend for LLM tools: token-budgeted context and tool schemas (issue 5)."""

from __future__ import annotations

ROUTES: list = []
