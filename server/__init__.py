"""`sagactl serve`: the HTTP API and the web console over the run store.

An ASGI app (Starlette, served by uvicorn) that takes build uploads as streams, starts,
cancels, resumes and abandons runs, and shows them live. It uses the engine and the build
saga; neither knows of it.
"""

from __future__ import annotations

from .app import create_app as create_app
from .config import ServerConfig as ServerConfig

__all__ = ["ServerConfig", "create_app"]
