"""The root `sagactl` group: global options, error-to-exit-code mapping, command loading."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import InputError, SagaError
from ..exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED
from .commands import BUILTIN, builtin_command, plugin_commands


class SagaGroup(click.Group):
    """Turns our errors into one clear line on stderr and the exit codes of `options.py`.

    Commands are found by name when asked for (`commands.py`): plugin commands are loaded
    only for a name that is not ours, and for `--help`.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # a bad option of the root group itself
            _usage(exc)
            raise

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name) or builtin_command(cmd_name)
        return command or self._plugin_commands().get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *BUILTIN, *self._plugin_commands()})

    def _plugin_commands(self) -> dict[str, click.Command]:
        """The plugin commands; each problem is one warning line, once per process."""
        found, problems = plugin_commands(taken={*self.commands, *BUILTIN})
        if not self._warned:
            self._warned = True
            for problem in problems:
                click.echo(f"warning: {problem}", err=True)
        return found

    _warned = False

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
        except SagaError as exc:
            _fail(str(exc), EXIT_FAILED)
        except click.exceptions.Exit:
            raise
        except click.UsageError as exc:
            _usage(exc)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)


LOGS_ONLY = frozenset({"worker"})
"""Commands whose stderr holds nothing but log records (JSON lines when not a terminal)."""


def _usage(exc: click.UsageError) -> None:
    """A bad argument: one `error:` line, as every other bad input (click would print the
    usage block too)."""
    where = exc.ctx.command_path if exc.ctx is not None else "sagactl"
    _fail(f"{exc.format_message()} (see '{where} --help')", exc.exit_code)


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
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Run sagas declared in YAML, with a durable log that survives crashes."""
    from .. import faults  # noqa: F401  (declares $SAGACTL_FAULTS, checked with the rest)
    from ..settings import check_declared
    from .logging import configure

    check_declared()  # every setting, before any command creates anything
    configure(verbose, logs_only=ctx.invoked_subcommand in LOGS_ONLY)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="sagactl")
