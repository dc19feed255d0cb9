"""Loads a named platform plugin (a builder, a runtime) from its entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from sagactl.engine import InputError, PluginError


def names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def load(group: str, name: str, what: str, *args: Any) -> Any:
    """Calls the factory registered as `name` in `group` with `args`.

    InputError for an unknown name; PluginError (naming the distribution) for one that
    fails to load or that two distributions claim.
    """
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        installed = ", ".join(names(group)) or "none"
        raise InputError(f"no {what} named {name!r} (installed: {installed})")
    if len({ep.value for ep in found}) > 1:
        dists = ", ".join(sorted(ep.dist.name if ep.dist else "?" for ep in found))
        raise PluginError(
            f"{what} {name!r} is claimed by several distributions: {dists}",
            group=group,
            name=name,
            distribution=None,
        )
    entry = found[0]
    distribution = entry.dist.name if entry.dist else None
    try:
        return entry.load()(*args)
    except Exception as exc:
        raise PluginError(
            f"{what} {name!r} from {distribution or 'an unknown distribution'} failed to "
            f"load: {exc}",
            group=group,
            name=name,
            distribution=distribution,
        ) from exc
