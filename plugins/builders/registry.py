"""Finds image builders by name in the `sagactl.builders` entry-point group."""

from __future__ import annotations

import shutil
from typing import cast

from .. import registry
from .base import Builder, BuilderOptions

GROUP = "sagactl.builders"


def names() -> list[str]:
    return registry.names(GROUP)


def default_name() -> str:
    """buildah when it is installed, else the embedded oci builder."""
    return "buildah" if shutil.which("buildah") else "oci"


def load(name: str, options: BuilderOptions) -> Builder:
    """The builder `name`, made with `options`; InputError for an unknown name."""
    return cast(Builder, registry.load(GROUP, name, "image builder", options))
