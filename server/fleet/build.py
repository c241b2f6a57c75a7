"""The fleet's members, from the settings: the engines it attaches to (repeated --engine-url, the fleet file) and how
many it launches on this host (--engines; one by default when none is attached). `serve` builds the fleet from these
(server/serve/engine_choice.py `build_fleet`); each gateway worker names its views of the members from them."""

from __future__ import annotations

from server.fleet.fleet_file import Attached, read_fleet_file
from server.settings import Settings


def attached_entries(settings: Settings) -> list[Attached]:
    listed = [Attached(url=url) for url in settings.engine_url]
    return listed + (read_fleet_file(settings.fleet_file) if settings.fleet_file is not None else [])


def member_names(settings: Settings) -> list[str]:
    """Every member's name, in the fleet's order (a worker builds its views of them from this)."""
    attached = [entry.named() for entry in attached_entries(settings)]
    return [f"local-{i}" for i in range(local_count(settings, len(attached)))] + attached


def local_count(settings: Settings, attached: int) -> int:
    return settings.engines if settings.engines is not None else int(attached == 0)
