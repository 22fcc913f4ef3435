"""User-facing settings: how one is declared, and the ones the core reads.

A setting is declared once, as a `Setting` (name, default, help, environment
variable, the commands that take it). Everything else comes from that
declaration: the command-line flags (`service.cli`), the service and MCP
settings (`service.settings`), and the README's settings table
(`python -m service.settings --markdown`).

Settings that belong to a group (the chunking of `newsqa index`, the bounds
of a fetch, a running service) are fields of that group's frozen dataclass,
declared with `setting(...)`; `settings_of(Group)` reads them back as
`Setting`s named after the fields. The core settings below are read wherever
the core needs them (`cache_root()`, `indexer.store.backends`,
`indexer.embed`), always from their declaration, never from a literal.

This module imports nothing of the project: any layer may use it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The commands that read an index or a store (each takes --index and --store).
STORE_COMMANDS = ("index", "delete", "search", "ask", "eval", "list", "show", "stats", "serve", "mcp")


@dataclass(frozen=True)
class Setting:
    """One user-facing setting.

    `name` is the Python name (the flag is `--name-with-dashes` unless `flag`
    says otherwise); `default` also gives the flag's type; `env`, when set,
    is the environment variable read when no flag gives a value; `surfaces`
    are the commands that take it (`serve`, `mcp`, `index`, ...); `secret`
    values are never printed (no default shown in --help); `has_flag` is
    False for a setting only the environment gives; `shown_default`
    replaces the default in help and docs where the value is computed
    (e.g. a path under the home directory).
    """

    name: str
    default: Any
    help: str
    env: str = ""
    flag: str = ""
    secret: bool = False
    surfaces: tuple[str, ...] = ()
    shown_default: str = ""
    has_flag: bool = True

    @property
    def option(self) -> str:
        """The command-line flag, e.g. `--max-tokens`."""
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def repeated(self) -> bool:
        """A tuple setting is a flag given once per value (e.g. `--cors-origin`)."""
        return isinstance(self.default, tuple)

    def from_env(self, environ: Mapping[str, str] | None = None) -> str:
        """The value of `env` in the environment, or "" when the setting has none or it is unset."""
        if not self.env:
            return ""
        return (os.environ if environ is None else environ).get(self.env, "")

    def default_text(self) -> str:
        """The default as help and docs show it."""
        if self.shown_default:
            return self.shown_default
        if self.repeated:
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return "" if self.default in ("", None) else str(self.default)

    def field(self) -> Any:
        """A dataclass field declared by this setting (for a group that reuses a core setting)."""
        return dataclasses.field(default=self.default, metadata={"setting": self})


def setting(default: Any, help: str, **declaration: Any) -> Any:
    """A dataclass field declaring a setting named after the field (see `settings_of`).

    Keyword arguments are those of `Setting` (env, flag, secret, surfaces, shown_default).
    """
    return dataclasses.field(default=default, metadata={"setting": Setting("", default, help, **declaration)})


def declared_fields(group: type) -> list[tuple[str, Setting]]:
    """(field name, setting) for each field of the dataclass `group` that declares a setting, in field
    order; the setting is named after its field unless it reuses a named one (`INDEX` for `index_dir`)."""
    return [(f.name, dataclasses.replace(f.metadata["setting"], name=f.metadata["setting"].name or f.name))
            for f in dataclasses.fields(group) if "setting" in f.metadata]


def settings_of(group: type) -> tuple[Setting, ...]:
    """The settings the fields of the dataclass `group` declare (see `declared_fields`)."""
    return tuple(s for _, s in declared_fields(group))


CACHE_DIR = Setting(
    "cache_dir", "", "where derived files live: the ONNX export, tiktoken's BPE files, evaluation indexes "
    "and embeddings (never the repository or a dataset)", env="NEWSQA_CACHE_DIR",
    surfaces=("index", "search", "ask", "eval", "serve", "mcp", "follow"), shown_default="~/.cache/newsqa",
    has_flag=False)
INDEX = Setting("index", Path("index"), "index directory", env="NEWSQA_INDEX",
                surfaces=(*STORE_COMMANDS, "follow", "merge"))
STORE = Setting("store", "", "PostgreSQL store instead of --index: postgresql://USER@HOST/DB (README, PostgreSQL "
                "backend)", env="NEWSQA_STORE", secret=True, surfaces=STORE_COMMANDS)
EMBED_BACKEND = Setting("embed_backend", "auto", "embedding backend: auto (ONNX for queries, torch for "
                        "passages, each falling back to the other), onnx or torch", env="NEWSQA_EMBED_BACKEND",
                        surfaces=("index", "search", "ask", "eval", "serve", "mcp", "follow"), has_flag=False)
# The settings read below the service, wherever the core needs them.
CORE_SETTINGS = (CACHE_DIR, INDEX, STORE, EMBED_BACKEND)


def cache_root() -> Path:
    """Where derived files live (the ONNX export, tiktoken's BPE files, evaluation indexes and
    embeddings): `$NEWSQA_CACHE_DIR`, else `~/.cache/newsqa`. Never the repository or a dataset."""
    return Path(CACHE_DIR.from_env() or Path(CACHE_DIR.shown_default).expanduser())
