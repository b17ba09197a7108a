"""UIServer, run_ui and ``embedviz ui`` share UI_DEFAULTS (review 6, finding 15)."""

import inspect

import pytest

from embedviz._defaults import UI_DEFAULTS
from embedviz.cli import build_parser
from embedviz.ui import commands
from embedviz.ui.server import UIServer


def _ui_parser():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command" or a.choices]
    return sub.choices["ui"]


def test_server_run_ui_and_command_line_defaults_are_ui_defaults():
    server = inspect.signature(UIServer).parameters
    run_ui = inspect.signature(commands.run_ui).parameters
    args = build_parser().parse_args(["ui", "runs.db"])
    for name, value in UI_DEFAULTS.items():
        assert server[name].default == value, name
        assert run_ui[name].default == value, name
        assert getattr(args, name) == value, name
    ui = UIServer()
    assert (ui.host, ui.port) == (UI_DEFAULTS["host"], UI_DEFAULTS["port"])


def test_help_shows_the_defaults_it_uses(monkeypatch):
    monkeypatch.setitem(UI_DEFAULTS, "port", 9123)
    monkeypatch.setitem(UI_DEFAULTS, "host", "127.0.0.9")
    text = " ".join(_ui_parser().format_help().split())
    assert "--port PORT port (default 9123)" in text
    assert "--host HOST interface to bind (default 127.0.0.9)" in text
    assert "http://127.0.0.9:9123/" in text


def test_host_and_port_cannot_be_swapped_by_position():
    """run_ui(paths, host, port) and UIServer(port, host) read the other way round:
    only keywords are taken after the first parameter."""
    assert UIServer(0).port == 0  # the port alone may stay positional
    with pytest.raises(TypeError):
        UIServer(0, "127.0.0.1")
    with pytest.raises(TypeError):
        commands.run_ui(["runs.db"], "127.0.0.1", 0)
