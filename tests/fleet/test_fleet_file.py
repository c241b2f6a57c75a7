"""The fleet file and the fleet `serve` builds from its settings: names, keys, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.errors import ConfigError
from server.fleet.build import member_names
from server.fleet.fleet_file import read_fleet_file
from server.serve.engine_choice import build_fleet
from server.settings import OPENROUTER_MODEL_ID, Settings


def test_a_fleet_file_lists_engines_with_a_key_each(tmp_path: Path) -> None:
    (tmp_path / "node1.key").write_text("key-one\n")
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "engines:\n"
        f"  - {{url: 'http://10.0.0.11:8100', api_key_file: '{tmp_path / 'node1.key'}'}}\n"
        "  - {url: 'http://llm-d.internal', name: llm-d, router: true,"
        " model: mistralai/mistral-small-3.2-24b-instruct}\n"
    )
    one, router = read_fleet_file(path)
    assert (one.named(), one.key("default"), one.router) == ("10.0.0.11:8100", "key-one", False)
    assert (router.named(), router.key("default"), router.router) == ("llm-d", "default", True)
    fleet, _ = build_fleet(Settings(fleet_file=path, cache_dir=tmp_path))
    assert [m.name for m in fleet.members] == ["10.0.0.11:8100", "llm-d"]  # attached only: nothing launched here
    assert [m.engine.api_key for m in fleet.members] == ["key-one", ""]
    # what each serves: the gateway's model unless the file names another (its readiness probe asks for that one)
    assert [m.model for m in fleet.members] == [OPENROUTER_MODEL_ID, "mistralai/mistral-small-3.2-24b-instruct"]
    assert member_names(Settings(fleet_file=path, cache_dir=tmp_path)) == ["10.0.0.11:8100", "llm-d"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("engines: []", "engines: List should have at least 1 item"),
        ("engines: [{url: 'ftp://x'}]", "engines.0.url: String should match pattern"),
        ("engines: [{url: 'http://x:1', api_key: 'inline'}]", "engines.0.api_key: Extra inputs are not permitted"),
        ("engines: [{url: 'http://x:1', name: 'a b'}]", "engines.0.name: String should match pattern"),
        ("engines: [{url: 'http://x:1', model: 'no-author'}]", "engines.0.model: String should match pattern"),
        ("engines: [", "fleet file"),
    ],
)
def test_a_wrong_fleet_file_says_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="fleet file") as refused:
        read_fleet_file(path)
    assert says in str(refused.value)


def test_a_missing_key_file_and_twin_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"engines: [{{url: 'http://10.0.0.1:1', api_key_file: '{tmp_path / 'absent.key'}'}}]")
    with pytest.raises(ConfigError, match=r"the key of engine 10\.0\.0\.1:1"):
        build_fleet(Settings(fleet_file=path, cache_dir=tmp_path))
    with pytest.raises(ConfigError, match="two engines share a name"):
        build_fleet(Settings(engine_url="http://10.0.0.1:1,http://10.0.0.1:1", cache_dir=tmp_path))


def test_engine_urls_from_the_environment_and_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_LOCAL_ENGINE_URL", "http://a:1, http://b:2")
    assert Settings().engine_url == ("http://a:1", "http://b:2")  # commas in the variable
    assert Settings(engine_url=["http://c:3"]).engine_url == ("http://c:3",)  # the repeated flag
    monkeypatch.setenv("MISTRAL_LOCAL_ENGINE_URL", "http://a:1")
    assert member_names(Settings()) == ["a:1"]
    assert member_names(Settings(engine_url=())) == ["local-0"]  # none attached: one launched here
    assert member_names(Settings(engines=2, engine_url=("http://a:1",))) == ["local-0", "local-1", "a:1"]
