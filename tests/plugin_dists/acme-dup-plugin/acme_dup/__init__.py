"""A second `acme.notify` and `acme-hello`, clashing with acme-saga-plugin's."""

from __future__ import annotations

import click
from sagactl.engine import Action, ActionContext, Inputs, Outputs


class Notify(Action):
    """Another notifier."""

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return {}


@click.command()
def hello() -> None:
    click.echo("hello from the duplicate")
