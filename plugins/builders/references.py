"""Grammars for what names an image: digests, registry references, and which base an app may use.

An upload chooses its base image only among the operator's (the configured stack bases and
an explicit allow-list) or by a registry reference; never by a host path or a transport
(`oci:`, `dir:`, `containers-storage:` ...), which would make the builder open host files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sagactl.engine import InputError

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
DIGEST = re.compile(r"^(sha256|sha512):([0-9a-f]+)$")

# distribution/reference's grammar (docker.io/library/python:3.12@sha256:...), anchored.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]{{1,5}})?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
REGISTRY_REFERENCE = re.compile(
    rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?$"
)
MAX_NAME = 255
_ON_THIS_HOST = re.compile(r"^(?:localhost:\d+|\[[0-9a-fA-F:.]*\](?::\d+)?|[0-9.]+(?::\d+)?)/")
"""A registry given as `localhost:PORT` or an IP literal: the builder would pull from it on
the host (its loopback services included), outside the sandbox."""


class InvalidReference(InputError):
    """A digest or image reference that does not follow its grammar."""


def check_digest(digest: str) -> str:
    """`digest` when it is `algorithm:hex` with a known algorithm and the right length."""
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None or len(match[2]) != _HEX_LENGTH[match[1]]:
        raise InvalidReference(f"not a digest (algorithm:hex): {digest!r:.80}")
    return digest


def is_registry_reference(ref: str) -> bool:
    match = REGISTRY_REFERENCE.fullmatch(ref)
    return match is not None and len(match["name"]) <= MAX_NAME


def check_registry_reference(ref: str) -> str:
    """`ref` when it is a registry reference whose registry is not named by an address
    or a loopback port (`localhost/NAME`, buildah's local images, is fine)."""
    if not is_registry_reference(ref) or _ON_THIS_HOST.match(ref):
        raise InvalidReference(
            f"base image {ref!r:.120} is not a registry reference "
            "([REGISTRY/]NAME[:TAG][@sha256:HEX], lowercase name, no transport or path, "
            "a registry named by its host name)"
        )
    return ref


def choose_base(
    app_choice: str | None, default: str | None, operator_allowed: Iterable[str]
) -> str | None:
    """The base image for a build: the app's choice (app.toml `build.base_image`) when it is
    one the operator configured or a registry reference, else the stack's default.

    Operator-configured values are trusted as given (they may name a local layout);
    anything else from the upload must be a plain registry reference."""
    if app_choice is None:
        return default
    if app_choice in set(operator_allowed):
        return app_choice
    return check_registry_reference(app_choice)
