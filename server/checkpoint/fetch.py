"""`fetch-weights`: download one checkpoint of a Mistral Small 3.x repository, then check it: the Mistral-native
files where the repository has them, else its Hugging Face layout (RedHatAI's quantized checkpoints) with the base
model's tekken.json beside it when it has none.

huggingface_hub does the transfer (resumable, with progress bars, HF_TOKEN for the gated repositories); this
module chooses the files, says how much disk they need before anything is written (and refuses when the disk has
less), turns every Hub failure into a message that says what to do, and records which model the directory holds so
`serve` names it correctly (3.2 is served under its own OpenRouter id).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from server.checkpoint.check import check_model
from server.checkpoint.hf_layout import INDEX, SINGLE
from server.checkpoint.identity import DEFAULT, KNOWN, RELEASES, write_identity
from server.checkpoint.layout import MISTRAL_FILES
from server.checkpoint.tokenizer import TOKENIZER
from server.errors import ConfigError

# huggingface_hub 2.x speaks httpx2 (its own httpx fork); 1.x, which some vLLM releases' transformers need, httpx.
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError,)
try:
    import httpx2

    TRANSPORT_ERRORS += (httpx2.HTTPError,)
except ImportError:  # huggingface_hub 1.x
    pass
HUB_ERRORS: tuple[type[Exception], ...] = (
    HfHubHTTPError,
    OfflineModeIsEnabled,
    LocalEntryNotFoundError,
    *TRANSPORT_ERRORS,
)

OPTIONAL_FILES = ("SYSTEM_PROMPT.txt",)
HF_OPTIONAL = ("params.json", TOKENIZER, "generation_config.json")
REDHAT = "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503"
SHORT = {
    **RELEASES,
    "3.1-fp8": f"{REDHAT}-FP8-dynamic",
    "3.1-w8a8": f"{REDHAT}-quantized.w8a8",
    "3.1-w4a16": f"{REDHAT}-quantized.w4a16",
}
GB = 1e9
HASH_CHUNK = 16 * 1024 * 1024


def resolve_repo(repo: str) -> str:
    return SHORT.get(repo, repo)


def select_files(repo: str, available: list[str]) -> list[str]:
    """The Mistral-native files where the repository has them (the official ones also hold an HF-format copy);
    else its Hugging Face layout: config.json, the shards and their index, its params.json and tekken.json if any."""
    if all(f in available for f in MISTRAL_FILES):
        return [*MISTRAL_FILES, *(f for f in OPTIONAL_FILES if f in available)]
    shards = sorted(f for f in available if f.endswith(".safetensors") and "/" not in f)
    if "config.json" in available and (INDEX in available or SINGLE in available) and shards:
        return [
            "config.json",
            *([INDEX] if INDEX in available else []),
            *shards,
            *(f for f in HF_OPTIONAL if f in available),
        ]
    missing = [f for f in MISTRAL_FILES if f not in available]
    raise ConfigError(
        f"{repo} holds neither a Mistral-native checkpoint (missing: {', '.join(missing)}) nor one in the Hugging "
        f"Face layout (config.json with safetensors shards). Use a repository with either, such as "
        f"{DEFAULT.hugging_face_id}."
    )


def _free_bytes(directory: Path) -> int:
    """Free space where `directory` is, or will be (its nearest existing parent)."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _check_room(directory: Path, need: int, say: Callable[[str], None]) -> None:
    have = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else 0
    free = _free_bytes(directory)
    say(f"needs {need / GB:.1f} GB in {directory} ({have / GB:.1f} GB already there, {free / GB:.1f} GB free)")
    if need - have > free:
        raise ConfigError(
            f"{directory} has {free / GB:.1f} GB free; the download needs {(need - have) / GB:.1f} GB more"
        )


def _hub_failure(repo: str, exc: Exception, token: str | None) -> ConfigError:
    page = f"https://huggingface.co/{repo}"
    if isinstance(exc, OfflineModeIsEnabled):
        return ConfigError("HF_HUB_OFFLINE is set: unset it to download (or copy the files here by hand)")
    if isinstance(exc, GatedRepoError):
        if token:
            return ConfigError(
                f"{repo} is gated and HF_TOKEN's account has no access yet: accept the terms at {page} with that "
                "account (access is granted at once), then run this again"
            )
        return ConfigError(f"{repo} is gated: accept its terms at {page}, then set HF_TOKEN to a token of that account")
    if isinstance(exc, RevisionNotFoundError):
        return ConfigError(f"{repo} has no such revision: {exc}")
    if isinstance(exc, RepositoryNotFoundError):
        return ConfigError(f"{repo} does not exist on the Hub, or it is private and HF_TOKEN cannot see it")
    if isinstance(exc, HfHubHTTPError):
        return ConfigError(f"the Hugging Face Hub refused the download of {repo}: {exc}")
    return ConfigError(
        f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({type(exc).__name__}: {exc}). Without "
        "internet here: run `mistral-local fetch-weights --dir DIR` on a machine with it, copy DIR over, then "
        "`mistral-local check-model DIR`"
    )


def _download(repo: str, directory: Path, revision: str | None, token: str | None, say: Callable[[str], None]) -> str:
    """The chosen files of `repo` into `directory`, after the room for them is checked; the commit fetched."""
    api = HfApi(token=token)
    info = api.model_info(repo, revision=revision)
    files = select_files(repo, [s.rfilename for s in info.siblings or []])
    tree = list(api.list_repo_tree(repo, revision=info.sha))
    sizes = {e.path: getattr(e, "size", 0) or 0 for e in tree}
    # The Hub's SHA-256 of each file stored in LFS (the weights; small files are in git, checked by git's own id).
    hashes = {e.path: lfs.sha256 for e in tree if (lfs := getattr(e, "lfs", None)) is not None and e.path in files}
    borrowed = TOKENIZER not in files  # an HF-layout repository without one: the base model's goes beside
    if borrowed:
        base = api.list_repo_tree(DEFAULT.hugging_face_id)
        sizes[TOKENIZER] = next((getattr(e, "size", 0) or 0 for e in base if e.path == TOKENIZER), 0)
    _check_room(directory, sum(sizes.get(f, 0) for f in files) + (sizes[TOKENIZER] if borrowed else 0), say)
    directory.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo, revision=info.sha, allow_patterns=files, local_dir=directory, token=token)
    if borrowed:
        say(f"{repo} has no {TOKENIZER}: taking the base model's ({DEFAULT.hugging_face_id})")
        snapshot_download(DEFAULT.hugging_face_id, allow_patterns=[TOKENIZER], local_dir=directory, token=token)
    _verify(directory, hashes, say)
    return str(info.sha)


def _verify(directory: Path, hashes: dict[str, str], say: Callable[[str], None]) -> None:
    """Each LFS file against the Hub's SHA-256. One that differs is deleted, so running again fetches it anew
    (huggingface_hub would otherwise take the file it already has)."""
    files = f"{len(hashes)} file{'s' if len(hashes) != 1 else ''}"
    say(f"verifying the SHA-256 of {files} ({sum(_size(directory / f) for f in hashes) / GB:.1f} GB)")
    for name, expected in sorted(hashes.items()):
        digest = hashlib.sha256()
        with (directory / name).open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            (directory / name).unlink()
            raise ConfigError(
                f"{name} does not match the Hub's SHA-256 (expected {expected}, got {digest.hexdigest()}): it was "
                "deleted; run fetch-weights again to download it anew"
            )


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def fetch_weights(repo: str, directory: Path, revision: str | None = None, say: Callable[[str], None] = print) -> Path:
    repo = resolve_repo(repo)
    token = os.environ.get("HF_TOKEN") or None
    try:
        sha = _download(repo, directory, revision, token, say)
    except HUB_ERRORS as exc:
        raise _hub_failure(repo, exc, token) from exc
    except OSError as exc:
        raise ConfigError(f"writing {directory} failed: {exc}") from exc
    # RedHatAI's quantized checkpoints are Mistral Small 3.1.
    write_identity(directory, KNOWN.get(repo, DEFAULT), repo=repo, revision=sha)
    report = check_model(directory, thorough=True)
    if not report.ok:
        raise ConfigError(f"downloaded {repo}, but {directory} does not check out: " + "; ".join(report.problems))
    return directory
