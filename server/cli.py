"""`sagactl serve`, registered in the `sagactl.commands` entry-point group."""

from __future__ import annotations

import click
from sagactl.engine.cli.options import DB_OPTION

from .config import TOKEN_ENV, ServerConfig


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    metavar="TOKEN",
    help=f"Bearer token every mutating request needs (${TOKEN_ENV}); required off loopback.",
)
@click.option("--no-resume", is_flag=True, help="Do not resume orphaned runs at start.")
@DB_OPTION
def serve(host: str, port: int, token: str | None, no_resume: bool, db: str | None) -> None:
    """Serve the HTTP API and the web console over the run store."""
    import uvicorn

    from .app import create_app

    config = ServerConfig(db=db, host=host, port=port, token=token, resume_orphans=not no_resume)
    app = create_app(config)
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
