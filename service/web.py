"""Server-rendered search page and article pages (issue 4)."""

from __future__ import annotations

ROUTES: list = []
