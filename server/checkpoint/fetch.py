"""`fetch-weights`: download only the Mistral-native files of a Mistral Small 3.x repository, then check them.

huggingface_hub does the transfer (resumable, with progress bars, HF_TOKEN for the gated repositories); this
module chooses the files, turns every Hub failure into a message that says what to do, and records which model
the directory holds so `serve` names it correctly (3.2 is served under its own OpenRouter id).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
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
from server.checkpoint.identity import DEFAULT, IDENTITY_FILE, KNOWN
from server.checkpoint.layout import MISTRAL_FILES
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


SHORT = {"3.1": DEFAULT.hugging_face_id, "3.2": "mistralai/Mistral-Small-3.2-24B-Instruct-2506"}


def resolve_repo(repo: str) -> str:
    return SHORT.get(repo, repo)


def select_files(repo: str, available: list[str]) -> list[str]:
    """The Mistral-native files, and nothing else (these repositories also hold a second, HF-format copy)."""
    missing = [f for f in MISTRAL_FILES if f not in available]
    if missing:
        hint = (
            " It looks like an HF-format repository, which mistral-local does not serve."
            if "config.json" in available
            else ""
        )
        raise ConfigError(
            f"{repo} has no Mistral-native checkpoint (missing: {', '.join(missing)}).{hint} Use a repository "
            f"with {', '.join(MISTRAL_FILES)}, such as {DEFAULT.hugging_face_id}."
        )
    return [*MISTRAL_FILES, *(f for f in OPTIONAL_FILES if f in available)]


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


def fetch_weights(repo: str, directory: Path, revision: str | None = None) -> Path:
    repo = resolve_repo(repo)
    token = os.environ.get("HF_TOKEN") or None
    try:
        info = HfApi(token=token).model_info(repo, revision=revision)
        files = select_files(repo, [s.rfilename for s in info.siblings or []])
        directory.mkdir(parents=True, exist_ok=True)
        snapshot_download(repo, revision=info.sha, allow_patterns=files, local_dir=directory, token=token)
    except HUB_ERRORS as exc:
        raise _hub_failure(repo, exc, token) from exc
    except OSError as exc:
        raise ConfigError(f"writing {directory} failed: {exc} (the weights need about 48 GB)") from exc
    identity = KNOWN.get(repo, DEFAULT)
    record = {**asdict(identity), "repo": repo, "revision": info.sha}
    (directory / IDENTITY_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    report = check_model(directory)
    if not report.ok:
        raise ConfigError(f"downloaded {repo}, but {directory} does not check out: " + "; ".join(report.problems))
    return directory
