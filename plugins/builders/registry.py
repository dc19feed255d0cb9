"""Finds image builders by name in the `sagactl.builders` entry-point group."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points

from sagactl.engine import InputError, PluginError

from .base import Builder, BuilderOptions

GROUP = "sagactl.builders"


def names() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def default_name() -> str:
    """buildah when it is installed, else the embedded oci builder."""
    return "buildah" if shutil.which("buildah") else "oci"


def load(name: str, options: BuilderOptions) -> Builder:
    """The builder `name`, made with `options`; InputError for an unknown name."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise InputError(f"no image builder named {name!r} (installed: {', '.join(names())})")
    if len({ep.value for ep in found}) > 1:
        dists = ", ".join(sorted(ep.dist.name if ep.dist else "?" for ep in found))
        raise PluginError(
            f"builder {name!r} is claimed by several distributions: {dists}",
            group=GROUP,
            name=name,
            distribution=None,
        )
    entry = found[0]
    distribution = entry.dist.name if entry.dist else None
    try:
        factory = entry.load()
        builder = factory(options)
    except Exception as exc:
        raise PluginError(
            f"builder {name!r} from {distribution or 'an unknown distribution'} failed to "
            f"load: {exc}",
            group=GROUP,
            name=name,
            distribution=distribution,
        ) from exc
    return builder  # type: ignore[no-any-return]
