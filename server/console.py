"""The web console: server-rendered pages (filled in below)."""

from __future__ import annotations

from starlette.routing import Route

routes: list[Route] = []
