"""Domain errors. Core code raises these; the CLI and the HTTP layer translate them.

Every error has a stable machine `code` and a message that names the value,
the limit and the fix.
"""

from __future__ import annotations


class NewsqaError(Exception):
    """Base class: `code` is stable and machine-readable, `str(err)` is for people."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class InvalidQuery(NewsqaError):
    code = "invalid_query"


class InvalidParameter(NewsqaError):
    code = "invalid_parameter"


class NotFound(NewsqaError):
    code = "not_found"
    http_status = 404


class IndexMissing(NewsqaError):
    code = "index_missing"
    http_status = 503


class IndexMismatch(NewsqaError):
    code = "index_mismatch"
    http_status = 503


class IndexBusy(NewsqaError):
    """Another process holds the index's writer lock and the caller chose not to wait."""

    code = "index_busy"
    http_status = 503


class ResourceMissing(NewsqaError):
    """A model or tokenizer file that must ship with an installed package is absent."""

    code = "resource_missing"
    http_status = 503


class InputError(NewsqaError):
    """One unreadable record in the input; reported per file and line, never fatal."""

    code = "invalid_input"

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path
