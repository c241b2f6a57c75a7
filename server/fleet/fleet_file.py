"""The fleet file: the engines a gateway attaches to, each with its own key (a file, as `mistral-local engine` writes
it on its node). YAML:

    engines:
      - url: http://10.0.0.11:8100
        api_key_file: /etc/mistral-local/node1.key
      - url: http://10.0.0.12:8100
        api_key_file: /etc/mistral-local/node2.key
        name: node2              # default: HOST:PORT
        model: mistralai/mistral-small-3.2-24b-instruct   # default: the gateway's model id
      - url: http://llm-d-gateway.internal
        router: true             # a router in front of several engines (llm-d, vLLM router): gets X-Session-ID
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.errors import ConfigError


class Attached(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^(https?://|unix:)")
    api_key_file: Path | None = None
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
    router: bool = False
    # The OpenRouter id the engine serves (its vLLM served model name): `mistral-local engine` serves the id its
    # weights' served-model.json names. Requests for that id go to it (engines may serve different models).
    model: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.:-]+$")

    def named(self) -> str:
        if self.name is not None:
            return self.name
        if self.url.startswith("unix:"):
            return self.url
        return urlsplit(self.url).netloc

    def key(self, default: str) -> str:
        """The engine's key: its file's first line, else the key given for every attached engine."""
        if self.api_key_file is None:
            return default
        try:
            return self.api_key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"the key of engine {self.named()}: {exc}") from exc


class FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engines: list[Attached] = Field(min_length=1)


def read_fleet_file(path: Path) -> list[Attached]:
    try:
        data = yaml.safe_load(path.read_text())
        return FleetFile.model_validate(data).engines
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"fleet file {path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"fleet file {path}: {problems}") from exc
