"""Operational routes: readiness, metrics, index reload (issue 6)."""

from __future__ import annotations

ROUTES: list = []
