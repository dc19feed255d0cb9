"""The benchmark workloads: the build saga's 11-action DAG, a 300-wide DAG, a 300-chain,
and a 10,000-element fan-out.

Every runner (plain calls, sagactl, TaskFlow, DBOS) executes the same no-op function per
action, fed with the outputs of the action's dependencies, so only the machinery differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, Inputs, Outputs

NOOP_USES = "bench.noop"
"""The `uses:` name the benchmark registers its no-op action under."""


@dataclass(frozen=True, slots=True)
class Dag:
    """A named DAG: each action mapped to the actions it depends on."""

    name: str
    needs: Mapping[str, tuple[str, ...]]
    pivot: str | None = None

    def __len__(self) -> int:
        return len(self.needs)

    def order(self) -> tuple[str, ...]:
        """A topological order, deterministic."""
        return tuple(TopologicalSorter(dict(sorted(self.needs.items()))).static_order())

    def layers(self) -> list[tuple[str, ...]]:
        """Actions grouped so each group depends only on earlier groups."""
        sorter = TopologicalSorter(dict(self.needs))
        sorter.prepare()
        layers = []
        while sorter.is_active():
            ready = tuple(sorted(sorter.get_ready()))
            layers.append(ready)
            sorter.done(*ready)
        return layers

    def compiled(self, *, checked: bool = False) -> CompiledSaga:
        """The DAG as a sagactl saga: every action the no-op, inputs referencing its deps.
        `checked`: each action uses its own schema-checked plugin action
        (`schema_checked_actions`) instead of the shared no-op."""
        actions = {
            name: ActionSpec(
                name=name,
                uses=f"{CHECKED_PREFIX}{name}" if checked else NOOP_USES,
                with_={dep: f"${{{{ actions.{dep}.outputs.done }}}}" for dep in deps},
                depends_on=frozenset(deps),
                pivot=name == self.pivot,
            )
            for name, deps in self.needs.items()
        }
        return CompiledSaga(name=self.name, version=1, actions=actions)


def noop(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The action body every runner calls: touches its inputs, returns one output."""
    return {"done": len(inputs) >= 0}


class NoopAction(Action):
    """The shared no-op as a sagactl action."""

    output_schema = {"type": "object", "properties": {"done": {"type": "boolean"}}}

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        return noop(inputs)


CHECKED_PREFIX = "bench-plugin."
"""`uses:` prefix of the schema-checked no-ops, one per action of a DAG."""

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object schema as real plugins declare them (build_from_tar/schemas.py `obj`)."""
    return {
        "$schema": _DRAFT,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def schema_checked_actions(dag: Dag) -> dict[str, Action]:
    """A third-party plugin's actions for `dag`: the no-op, each declaring a closed input
    schema (its dependencies' outputs, booleans) and a closed output schema, so both are
    checked by jsonschema on every call."""
    found: dict[str, Action] = {}
    for name, deps in dag.needs.items():
        cls = type(
            f"Checked_{name}",
            (NoopAction,),
            {
                "input_schema": _closed({dep: {"type": "boolean"} for dep in deps}),
                "output_schema": _closed({"done": {"type": "boolean"}}),
            },
        )
        found[f"{CHECKED_PREFIX}{name}"] = cls()
    return found


BUILD = Dag(
    name="bench-build",
    needs={
        "receive_tar": (),
        "load_config": ("receive_tar",),
        "detect_stack": ("receive_tar", "load_config"),
        "resolve_cluster_ip": (),
        "launch_buildkit": (),
        "get_next_version": (),
        "parse_services": ("receive_tar", "load_config", "detect_stack"),
        "build_image": (
            "receive_tar",
            "load_config",
            "detect_stack",
            "launch_buildkit",
            "get_next_version",
            "resolve_cluster_ip",
        ),
        "create_version": ("get_next_version", "build_image", "parse_services"),
        "set_active_version": ("create_version",),
        "stop_old_sandboxes": ("set_active_version",),
    },
    pivot="set_active_version",
)
"""The build-from-tar saga's shape (definitions/build-from-tar.yaml) with no-op actions."""

WIDE_SIZE = 300


def independent(n: int = WIDE_SIZE) -> Dag:
    """n actions with no dependencies: all may run at once."""
    return Dag(name=f"bench-independent-{n}", needs={f"a{i:03d}": () for i in range(n)})


def chain(n: int = WIDE_SIZE) -> Dag:
    """n actions, each depending on the one before."""
    names = [f"a{i:03d}" for i in range(n)]
    return Dag(
        name=f"bench-chain-{n}",
        needs={name: (names[i - 1],) if i else () for i, name in enumerate(names)},
    )


FAN_OUT_SIZE = 10_000


def fan_out() -> CompiledSaga:
    """One `for_each` action running the no-op once per element of `inputs.items`."""
    action = ActionSpec(
        name="each", uses=NOOP_USES, for_each="${{ inputs.items }}", with_={"item": "${{ item }}"}
    )
    return CompiledSaga(
        name="bench-fan-out", version=1, actions={"each": action}, inputs={"items": {}}
    )


Plan = tuple[tuple[str, tuple[str, ...]], ...]


def plain_plan(dag: Dag) -> Plan:
    """Each action with its dependencies, in topological order, worked out once."""
    return tuple((name, dag.needs[name]) for name in dag.order())


def run_plain(plan: Plan) -> dict[str, dict[str, Any]]:
    """Baseline (a): the no-op functions called directly, in topological order."""
    outputs: dict[str, dict[str, Any]] = {}
    for name, deps in plan:
        outputs[name] = noop({dep: outputs[dep]["done"] for dep in deps})
    return outputs
