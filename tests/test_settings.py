"""Settings are declared once (indexer/settings.py, service/settings.py and each command's settings group):
the flags, the service and MCP settings and the README table all come from the declarations."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from indexer.settings import CORE_SETTINGS, INDEX, STORE, Setting, cache_root
from service.cli import build_parser
from service.settings import (McpSettings, ServiceSettings, declared_settings, markdown_table, readme_section,
                              settings_with_env)

ROOT = Path(__file__).resolve().parent.parent
ENVS = sorted({s.env for s in declared_settings() if s.env})


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _flag(s: Setting) -> str:
    return "--no-" + s.option[2:] if isinstance(s.default, bool) else s.option


def test_every_declared_flag_is_on_exactly_the_commands_it_names(clean_env):
    commands = _commands()
    settings = [s for s in declared_settings() if s.has_flag]
    assert settings, "nothing declared"
    for s in settings:
        assert set(s.surfaces) <= set(commands), f"{s.name} names a command that does not exist: {s.surfaces}"
        for name, parser in commands.items():
            # The same flag may mean something else on another command (eval --max-tokens: --beir documents).
            action = parser._option_string_actions.get(_flag(s))
            has = action is not None and s.help in (action.help or "")
            assert has == (name in s.surfaces), f"{_flag(s)} on `newsqa {name}`: {has}, declared {s.surfaces}"


def test_a_flag_takes_its_default_help_and_env_from_the_declaration(clean_env):
    commands = _commands()
    for s in declared_settings():
        if not s.has_flag:
            continue
        for name in s.surfaces:
            action = commands[name]._option_string_actions[_flag(s)]
            assert s.help in action.help, (name, s.name)
            assert (f"env {s.env}" in action.help) == bool(s.env), (name, s.name, action.help)
            if isinstance(s.default, bool):
                assert action.default is True and action.const is False
            elif s.repeated:
                assert action.default is None  # an empty list of values: the declared ()
            else:
                assert action.default == s.default and type(action.default) is type(s.default), (name, s.name)
                assert ("%(default)s" in action.help) != s.secret, "a secret's value is never shown"


def test_serve_and_mcp_settings_are_their_flags(clean_env):
    args = build_parser().parse_args(["serve"])
    from service.cli import _settings_from_args

    assert _settings_from_args(ServiceSettings, args) == ServiceSettings()
    args = build_parser().parse_args(["serve", "--port", "9001", "--cors-origin", "https://a.example",
                                      "--cors-origin", "https://b.example", "--index", "/tmp/x"])
    settings = _settings_from_args(ServiceSettings, args)
    assert (settings.port, settings.cors_origin, settings.index_dir) == (
        9001, ("https://a.example", "https://b.example"), Path("/tmp/x"))
    args = build_parser().parse_args(["mcp", "--reload-interval", "0"])
    mcp = _settings_from_args(McpSettings, args)
    assert mcp == McpSettings(reload_interval=0.0)
    assert mcp.service() == ServiceSettings(reload_interval=0.0), "the rest of the service settings at their defaults"


def test_an_env_var_is_honoured_and_a_flag_wins_over_it(clean_env, tmp_path):
    from service.cli import _settings_from_args

    clean_env.setenv("NEWSQA_INDEX", str(tmp_path / "from-env"))
    clean_env.setenv("NEWSQA_API_KEY", "env-key")
    clean_env.setenv("NEWSQA_STORE", "postgresql://u@h/db")
    parser = build_parser()
    for command in ("search", "serve", "mcp", "stats"):
        args = parser.parse_args([command, "q"] if command == "search" else [command])
        assert Path(getattr(args, "index_dir", None) or args.index) == tmp_path / "from-env", command
    serve = settings_with_env(_settings_from_args(ServiceSettings, parser.parse_args(["serve"])))
    assert (serve.api_key, serve.store) == ("env-key", "postgresql://u@h/db")
    flagged = _settings_from_args(ServiceSettings, parser.parse_args(["serve", "--api-key", "flag-key"]))
    assert settings_with_env(flagged).api_key == "flag-key"
    mcp = settings_with_env(McpSettings())
    assert mcp.store == "postgresql://u@h/db"
    clean_env.setenv("NEWSQA_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_root() == tmp_path / "cache"
    clean_env.delenv("NEWSQA_CACHE_DIR")
    assert cache_root() == Path.home() / ".cache" / "newsqa"


def test_the_embed_backend_comes_from_its_declaration(clean_env):
    from indexer.embed import BACKENDS
    from indexer.settings import EMBED_BACKEND

    assert EMBED_BACKEND.default in BACKENDS and EMBED_BACKEND.env == "NEWSQA_EMBED_BACKEND"
    clean_env.setenv("NEWSQA_EMBED_BACKEND", "torch")
    assert EMBED_BACKEND.from_env() == "torch"


def test_core_settings_are_declared_without_the_service():
    source = (ROOT / "indexer" / "settings.py").read_text(encoding="utf-8")
    assert "import service" not in source and "from service" not in source
    assert {INDEX, STORE} <= set(CORE_SETTINGS)
    names = [(s.name, s.option) for s in declared_settings()]
    assert len(names) == len(set(names)), "a setting declared twice"


def test_the_readme_table_is_the_declaration():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme_section(readme)
    assert table, "README.md lost its settings table markers"
    assert table == markdown_table(), (
        "README.md's settings table differs from the declarations: run `python -m service.settings --write README.md`")
    for s in declared_settings():
        assert f"| {s.help.replace('|', chr(92) + '|')} |" in table, s.name


def test_the_readme_check_fails_on_a_setting_added_or_dropped():
    table = markdown_table()
    extra = Setting("frobnicate", 3, "a setting nobody documented", surfaces=("serve",))
    assert markdown_table([*declared_settings(), extra]) != table
    assert markdown_table(declared_settings()[1:]) != table


def test_an_env_value_is_converted_like_a_flag_and_a_bad_one_is_a_usage_error(clean_env, capsys):
    from service.cli import _add_setting

    parser = argparse.ArgumentParser(prog="newsqa serve")
    _add_setting(parser, Setting("workers", 4, "workers at once", env="NEWSQA_TEST_WORKERS"))
    assert parser.parse_args([]).workers == 4
    clean_env.setenv("NEWSQA_TEST_WORKERS", "7")
    parser = argparse.ArgumentParser(prog="newsqa serve")
    _add_setting(parser, Setting("workers", 4, "workers at once", env="NEWSQA_TEST_WORKERS"))
    assert parser.parse_args([]).workers == 7
    assert parser.parse_args(["--workers", "2"]).workers == 2, "the flag wins over the env"
    clean_env.setenv("NEWSQA_TEST_WORKERS", "many")
    parser = argparse.ArgumentParser(prog="newsqa serve")
    _add_setting(parser, Setting("workers", 4, "workers at once", env="NEWSQA_TEST_WORKERS"))
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([])
    assert exit_.value.code == 2 and "--workers" in capsys.readouterr().err
