"""The build-from-tar saga's actions and the libraries they use (staging, tar checks, app config).

`build_from_tar(app, stream)` is the entry point: it registers the upload in the process's
StreamRegistry, runs the saga and returns the activated version.

The names below are imported on first use: the store loads this package's migrations on
every open, and `sagactl status` must not pay for the saga's machinery to do so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from sagactl.engine.lazy_exports import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from .entry import BuildFailed as BuildFailed
    from .entry import BuildResult as BuildResult
    from .entry import build_from_tar as build_from_tar
    from .entry import build_from_tar_async as build_from_tar_async
    from .settings import BuildSettings as BuildSettings
    from .streams import StreamRegistry as StreamRegistry
    from .tarcheck import StagingLimits as StagingLimits

_EXPORTS: dict[str, str] = {
    "BuildFailed": ".entry",
    "BuildResult": ".entry",
    "build_from_tar": ".entry",
    "build_from_tar_async": ".entry",
    "BuildSettings": ".settings",
    "StreamRegistry": ".streams",
    "StagingLimits": ".tarcheck",
}

__all__ = [
    "BuildFailed",
    "BuildResult",
    "BuildSettings",
    "StagingLimits",
    "StreamRegistry",
    "build_from_tar",
    "build_from_tar_async",
]


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, __all__)
