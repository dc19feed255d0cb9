"""The build-from-tar saga's actions and the libraries they use (staging, tar checks, app config).

`build_from_tar(app, stream)` is the entry point: it registers the upload in the process's
StreamRegistry, runs the saga and returns the activated version.
"""

from __future__ import annotations

from .entry import BuildFailed as BuildFailed
from .entry import BuildResult as BuildResult
from .entry import build_from_tar as build_from_tar
from .entry import build_from_tar_async as build_from_tar_async
from .settings import BuildSettings as BuildSettings
from .streams import StreamRegistry as StreamRegistry
from .tarcheck import StagingLimits as StagingLimits

__all__ = [
    "BuildFailed",
    "BuildResult",
    "BuildSettings",
    "StagingLimits",
    "StreamRegistry",
    "build_from_tar",
    "build_from_tar_async",
]
