"""`fetch-weights` end to end through the real CLI and huggingface_hub, against a loopback Hub (no network here):
the right files only, the served identity recorded, and a message that says what to do for every failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.checkpoint.check import ModelFormat, check_model
from server.checkpoint.fetch import _check_room, select_files
from server.checkpoint.hf_layout import INDEX
from server.checkpoint.identity import IDENTITY_FILE, identity_overrides, read_identity
from server.checkpoint.tiny import tekken, write_tiny_hf
from server.errors import ConfigError
from server.settings import Settings
from tests.support.fake_hub import SHA, Hub, serve_hub

CLI = str(Path(sys.executable).parent / "mistral-local")
MISTRAL_31 = "mistralai/Mistral-Small-3.1-24B-Instruct-2503"
MISTRAL_32 = "mistralai/Mistral-Small-3.2-24B-Instruct-2506"
W4A16 = "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w4a16"
# What these repositories hold: the Mistral-native checkpoint and an HF-format copy beside it.
LISTING = [
    "params.json", "consolidated.safetensors", "tekken.json", "SYSTEM_PROMPT.txt", "config.json",
    "model-00001-of-00010.safetensors", "model.safetensors.index.json", "tokenizer.json", "README.md",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_32(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """Mistral Small 3.2's repository, scaled down: the tiny weights with 3.2's tokenizer (v11)."""
    directory = tmp_path_factory.mktemp("tiny-32")
    for name in ("params.json", "consolidated.safetensors"):
        (directory / name).symlink_to(tiny_model / name)
    (directory / "tekken.json").write_text(json.dumps(tekken("3.2")))
    return directory


def fetch(tmp_path: Path, endpoint: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1"}
    if token:
        env["HF_TOKEN"] = token
    cmd = [CLI, "fetch-weights", "--dir", str(tmp_path / "weights"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_only_the_mistral_native_files_are_chosen() -> None:
    chosen = select_files(MISTRAL_31, LISTING)
    assert chosen == ["params.json", "consolidated.safetensors", "tekken.json", "SYSTEM_PROMPT.txt"]


def test_an_hf_layout_repository_gives_its_config_shards_and_index() -> None:
    listing = ["config.json", "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors", INDEX]
    listing += ["tokenizer.json", "recipe.yaml", "README.md", "params.json"]
    assert select_files(W4A16, listing) == [
        "config.json", INDEX, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "params.json",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"neither a Mistral-native checkpoint .* nor one in the Hugging Face layout"):
        select_files("someone/gguf", ["model-Q4_K_M.gguf", "README.md"])


def test_room_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    said: list[str] = []
    _check_room(tmp_path / "new" / "weights", 10**6, said.append)
    assert said[0].startswith(f"needs 0.0 GB in {tmp_path / 'new' / 'weights'} (0.0 GB already there, ")
    with pytest.raises(ConfigError, match=r"GB free; the download needs [0-9.]+ GB more"):
        _check_room(tmp_path, 10**18, said.append)


def test_an_hf_layout_checkpoint_arrives_with_the_base_models_tokenizer(tmp_path: Path, tiny_model: Path) -> None:
    """RedHatAI's quantized repositories are in the HF layout; one without tekken.json gets the base model's."""
    hf = write_tiny_hf(tmp_path / "repo")
    (hf / "tekken.json").unlink()
    hub = Hub({W4A16: hf, MISTRAL_31: tiny_model}, gated={MISTRAL_31})
    with serve_hub(hub) as endpoint:
        out = fetch(tmp_path, endpoint, "--repo", "3.1-w4a16", token=hub.allowed_token)
    assert out.returncode == 0, out.stderr
    weights = tmp_path / "weights"
    assert (weights / "tekken.json").read_bytes() == (tiny_model / "tekken.json").read_bytes()
    shards = sorted(p.name for p in hf.glob("model-*.safetensors"))
    assert all((weights / s).read_bytes() == (hf / s).read_bytes() for s in shards)
    needed = sum(p.stat().st_size for p in hf.iterdir()) + (tiny_model / "tekken.json").stat().st_size
    assert f"needs {needed / 1e9:.1f} GB in {weights}" in out.stdout
    assert "has no tekken.json: taking the base model's" in out.stdout
    identity = read_identity(weights)
    assert identity is not None and identity.model_id == "mistralai/mistral-small-3.1-24b-instruct"
    assert check_model(weights).format is ModelFormat.HF


def test_download_checks_the_model_and_records_its_identity(tmp_path: Path, tiny_32: Path) -> None:
    hub = Hub({MISTRAL_32: tiny_32}, gated={MISTRAL_32})
    with serve_hub(hub) as endpoint:
        out = fetch(tmp_path, endpoint, "--repo", "3.2", token=hub.allowed_token)
    assert out.returncode == 0, out.stderr
    weights = tmp_path / "weights"
    assert {"params.json", "consolidated.safetensors", "tekken.json"} <= {p.name for p in weights.iterdir()}
    assert (weights / "consolidated.safetensors").read_bytes() == (tiny_32 / "consolidated.safetensors").read_bytes()
    identity = read_identity(weights)
    assert identity is not None and identity.model_id == "mistralai/mistral-small-3.2-24b-instruct"
    assert json.loads((weights / IDENTITY_FILE).read_text())["revision"] == SHA
    assert f"mistral-local serve --model {weights}" in out.stdout
    assert "verifying the SHA-256 of 1 file (0.1 GB)" in out.stdout


def test_a_file_that_does_not_match_the_hubs_sha256_is_refused_and_fetched_anew(tmp_path: Path, tiny_32: Path) -> None:
    """The weights arrive with a byte flipped (a bad transfer or disk): fetch-weights says which file, deletes it,
    and the next run, the transfer sound, fetches it anew and succeeds."""
    hub = Hub({MISTRAL_32: tiny_32}, gated=set())
    hub.corrupt = {"consolidated.safetensors"}
    with serve_hub(hub) as endpoint:
        bad = fetch(tmp_path, endpoint, "--repo", "3.2")
        assert bad.returncode == 2
        assert "consolidated.safetensors does not match the Hub's SHA-256 (expected " in bad.stderr
        assert "it was deleted; run fetch-weights again to download it anew" in bad.stderr
        assert not (tmp_path / "weights" / "consolidated.safetensors").exists()
        hub.corrupt = set()
        again = fetch(tmp_path, endpoint, "--repo", "3.2")
    assert again.returncode == 0, again.stderr
    weights = tmp_path / "weights" / "consolidated.safetensors"
    assert weights.read_bytes() == (tiny_32 / "consolidated.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, f"is gated: accept its terms at https://huggingface.co/{MISTRAL_31}, then set HF_TOKEN"),
        ("hf_other", "HF_TOKEN's account has no access yet: accept the terms at"),
    ],
)
def test_gated_repository_says_what_to_do(tmp_path: Path, token: str | None, expected: str) -> None:
    with serve_hub(Hub({MISTRAL_31: LISTING}, gated={MISTRAL_31})) as endpoint:
        out = fetch(tmp_path, endpoint, token=token)
    assert out.returncode == 2
    assert expected in out.stderr


def test_unknown_repository(tmp_path: Path) -> None:
    with serve_hub(Hub({}, gated=set())) as endpoint:
        out = fetch(tmp_path, endpoint, "--repo", "someone/nothing-here")
    assert out.returncode == 2
    assert "someone/nothing-here does not exist on the Hub, or it is private" in out.stderr


def test_magistral_arrives_with_its_system_prompt_and_is_served_as_a_reasoning_model(
    tmp_path: Path, tiny_model: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.json", "consolidated.safetensors"):
        (repo / name).symlink_to(tiny_model / name)
    (repo / "tekken.json").write_text(json.dumps(tekken("magistral")))
    (repo / "SYSTEM_PROMPT.txt").write_text("First draft your thinking process [THINK]...[/THINK].")
    with serve_hub(Hub({"mistralai/Magistral-Small-2509": repo}, gated=set())) as endpoint:
        out = fetch(tmp_path, endpoint, "--repo", "magistral")
    assert out.returncode == 0, out.stderr
    weights = tmp_path / "weights"
    assert (weights / "SYSTEM_PROMPT.txt").read_text().startswith("First draft")
    identity = read_identity(weights)
    assert identity is not None and identity.model_id == "mistralai/magistral-small-2509" and identity.reasoning
    report = check_model(weights)
    assert report.ok and report.reasoning and report.tokenizer_version == 13


def test_unreachable_hub(tmp_path: Path) -> None:
    out = fetch(tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    assert out.returncode == 2
    assert "cannot reach the Hugging Face Hub at http://127.0.0.1:9" in out.stderr
    assert "copy DIR over" in out.stderr


def test_the_recorded_identity_names_the_served_model_unless_the_operator_did(
    tmp_path: Path, tiny_32: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = Hub({MISTRAL_32: tiny_32}, gated=set())
    with serve_hub(hub) as endpoint:
        assert fetch(tmp_path, endpoint, "--repo", MISTRAL_32).returncode == 0
    weights = tmp_path / "weights"
    named = identity_overrides(weights, set())
    assert named["model_id"] == "mistralai/mistral-small-3.2-24b-instruct"
    assert named["canonical_slug"] == "mistralai/mistral-small-3.2-24b-instruct-2506"
    monkeypatch.setenv("MISTRAL_LOCAL_MODEL_ID", "acme/small")
    assert "model_id" not in identity_overrides(weights, Settings().model_fields_set)


def test_unknown_revision(tmp_path: Path) -> None:
    with serve_hub(Hub({MISTRAL_31: LISTING}, gated=set())) as endpoint:
        out = fetch(tmp_path, endpoint, "--revision", "v9")
    assert out.returncode == 2
    assert f"{MISTRAL_31} has no such revision" in out.stderr


def test_offline_mode_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HUB_OFFLINE": "1"}
    cmd = [CLI, "fetch-weights", "--dir", str(tmp_path / "w")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 2
    assert "HF_HUB_OFFLINE is set: unset it to download" in out.stderr


def test_an_unwritable_directory_says_so(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "weights").write_text("a file where the directory should be")
    with serve_hub(Hub({MISTRAL_31: tiny_model}, gated=set())) as endpoint:
        out = fetch(tmp_path, endpoint)
    assert out.returncode == 2
    assert "writing" in out.stderr and "failed" in out.stderr and "File exists" in out.stderr
