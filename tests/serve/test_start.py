"""`serve`'s flags over the environment (server/serve/start.py): a flag not given leaves the environment's setting
alone, a repeated flag not given included (Typer hands it over as an empty tuple, which once replaced
MISTRAL_LOCAL_ENGINE_URL, so `serve` launched an engine of its own instead of attaching)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import server.serve.start as start
from server.cli import app
from server.settings import Settings


def test_a_flag_not_given_leaves_the_environment_and_a_given_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_LOCAL_ENGINE_URL", "http://127.0.0.1:8100")
    monkeypatch.setenv("MISTRAL_LOCAL_PORT", "8123")
    seen: list[Settings] = []
    monkeypatch.setattr(start, "serve_from_flags", lambda flags: seen.append(start.settings_from_flags(flags)))
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "--engine-url", "http://10.0.0.2:8100", "--port", "9000"]).exit_code == 0
    from_env, from_flags = seen
    assert from_env.engine_url == ("http://127.0.0.1:8100",) and from_env.port == 8123
    assert from_flags.engine_url == ("http://10.0.0.2:8100",) and from_flags.port == 9000
