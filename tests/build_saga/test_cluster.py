"""Cluster host resolution: real lookups, retries, fallback and strict mode."""

from __future__ import annotations

import pytest
from sagactl.actions.build_from_tar.cluster import ClusterSettings, resolve
from sagactl.engine import FatalError
from structlog.testing import capture_logs

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class TestResolve:
    async def test_resolves_localhost(self) -> None:
        """A host that resolves gives its address, no fallback."""
        resolved = await resolve(ClusterSettings(host="localhost"))
        assert resolved.ip in ("127.0.0.1", "::1")
        assert not resolved.fallback

    async def test_ip_literal(self) -> None:
        """An IP literal resolves to itself."""
        resolved = await resolve(ClusterSettings(), "10.11.12.13")
        assert (resolved.host, resolved.ip) == ("10.11.12.13", "10.11.12.13")

    async def test_fallback_with_warning(self) -> None:
        """A host that does not resolve falls back to 127.0.0.1 and logs a warning."""
        settings = ClusterSettings(host="no-such-host.invalid", retries=1, retry_delay=0)
        with capture_logs() as logs:
            resolved = await resolve(settings)
        assert (resolved.ip, resolved.fallback) == ("127.0.0.1", True)
        assert [e["log_level"] for e in logs] == ["warning"]
        assert logs[0]["host"] == "no-such-host.invalid"

    async def test_strict_fails(self) -> None:
        """Strict mode fails, naming the host and the number of tries."""
        settings = ClusterSettings(strict=True, retries=2, retry_delay=0)
        with pytest.raises(FatalError, match=r"'no-such-host\.invalid' after 3 tries"):
            await resolve(settings, "no-such-host.invalid")
