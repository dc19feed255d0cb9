"""The root `sagactl` group: global options, error-to-exit-code mapping, command loading."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import InputError, SagaError
from .options import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED


class SagaGroup(click.Group):
    """Turns our errors into one clear line on stderr and the exit codes of `options.py`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except SagaError as exc:
            _fail(str(exc), EXIT_FAILED)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)


def _fail(message: str, code: int) -> None:
    for line in message.splitlines() or [message]:
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


@click.group(cls=SagaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagactl")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more on stderr (-v info, -vv debug; $SAGACTL_LOG_LEVEL).",
)
def cli(verbose: int) -> None:
    """Run sagas declared in YAML, with a durable log that survives crashes."""
    from ..settings import check_declared
    from .logging import configure

    check_declared()  # every setting, before any command creates anything
    configure(verbose)


def _register_commands() -> None:
    from . import commands

    for command in commands.builtin():
        cli.add_command(command)
    commands.add_plugin_commands(cli)


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    cli.main(args=argv, prog_name="sagactl")
