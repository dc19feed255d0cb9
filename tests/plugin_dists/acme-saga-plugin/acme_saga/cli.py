"""Two `sagactl.commands`: a click command object, and a function that returns one."""

from __future__ import annotations

import click


@click.command()
@click.argument("who", default="world")
def hello(who: str) -> None:
    """Say hello from the acme plugin."""
    click.echo(f"hello {who} from acme")


def make_greet() -> click.Command:
    @click.command()
    def greet() -> None:
        """Greet from a command factory."""
        click.echo("greetings from acme")

    return greet
