"""The fleet `serve` runs, from the settings: the engines it attaches to (repeated --engine-url, the fleet file) and
those it launches on this host (--engines; one by default when none is attached)."""

from __future__ import annotations

from server.engine.attached import AttachedEngine
from server.errors import ConfigError
from server.fleet.fleet_file import Attached, read_fleet_file
from server.fleet.members import Fleet, Member
from server.planning.selection import local_engines
from server.settings import Settings


def attached_entries(settings: Settings) -> list[Attached]:
    listed = [Attached(url=url) for url in settings.engine_url]
    return listed + (read_fleet_file(settings.fleet_file) if settings.fleet_file is not None else [])


def member_names(settings: Settings) -> list[str]:
    """Every member's name, in the fleet's order (a worker builds its views of them from this)."""
    attached = [entry.named() for entry in attached_entries(settings)]
    return [f"local-{i}" for i in range(_local_count(settings, len(attached)))] + attached


def _local_count(settings: Settings, attached: int) -> int:
    return settings.engines if settings.engines is not None else int(attached == 0)


def build_fleet(settings: Settings) -> tuple[Fleet, Settings]:
    """The fleet, and the settings completed with what the local profile decides."""
    entries = attached_entries(settings)
    default_key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else ""
    members = []
    count = _local_count(settings, len(entries))
    if count:
        supervisors, settings = local_engines(settings, count)
        members = [Member(f"local-{i}", engine) for i, engine in enumerate(supervisors)]
    for entry in entries:
        model = entry.model or settings.model_id
        engine = AttachedEngine(
            entry.url, entry.key(default_key), model, start_timeout_s=settings.engine_start_timeout_s
        )
        members.append(Member(entry.named(), engine, router=entry.router))
    names = [m.name for m in members]
    if not members:
        raise ConfigError("no engine: --engines 0 and none attached (--engine-url, --fleet-file)")
    if len(set(names)) != len(names):
        raise ConfigError(f"two engines share a name: {names} (give each a `name` in the fleet file)")
    return Fleet(members), settings
