"""Which environment variables an upload's `[env]` may set: loader and libc variables never.

An app's `[env]` is hostile input. Variables read by the dynamic loader, libc or the shell
before the app's own code runs (LD_PRELOAD, GCONV_PATH, BASH_ENV...) would run uploaded
code inside the host tools that start a sandbox, so they are refused for every runtime.
The names a runtime sets itself (PORT, SAGACTL_*) are refused so an upload cannot shadow
them. A host-process sandbox (the `local` runtime) also keeps the host's PATH and HOME.
"""

from __future__ import annotations

from collections.abc import Mapping

REFUSED_PREFIXES = ("LD_", "SAGACTL_", "DYLD_")
REFUSED_NAMES = frozenset(
    {
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCPATH",
        "NLSPATH",
        "MALLOC_TRACE",
        "RESOLV_HOST_CONF",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "PS4",
        "PORT",
    }
)
HOST_ONLY_REFUSED = frozenset({"PATH", "HOME", "SHELL", "TMPDIR"})


class UnsafeEnv(ValueError):
    """An `[env]` name that no sandbox may take from an upload."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"env name {name!r} is not allowed: {reason}")
        self.name = name


def refusal(name: str, *, host_process: bool = False) -> str | None:
    """Why `name` may not come from an upload, or None when it may."""
    upper = name.upper()
    if upper.startswith(REFUSED_PREFIXES) or upper in REFUSED_NAMES - {"PORT"}:
        if upper.startswith("SAGACTL_"):
            return "the runtime sets SAGACTL_* itself"
        return "the loader, libc or shell read it before the app runs"
    if upper == "PORT":
        return "the runtime allocates the port and sets PORT itself"
    if host_process and upper in HOST_ONLY_REFUSED:
        return "a host-process sandbox keeps the host's value"
    return None


def check_app_env(env: Mapping[str, str], *, host_process: bool = False) -> None:
    """Raises UnsafeEnv for the first name an upload may not set."""
    for name in env:
        reason = refusal(name, host_process=host_process)
        if reason is not None:
            raise UnsafeEnv(name, reason)
