"""The compiled saga: an immutable DAG of action specs with a canonical hash.

The compiler (`sagactl.engine.compiler`) builds it from YAML; the runtime pins its
`to_dict()` form in the store and rebuilds it with `from_dict()` on resume.

The networkx DAG is built when the scheduler or a drawing first asks about the structure:
the order and the cycle check are stdlib (`dag_order`), so that `sagactl status` and
`validate` never import networkx.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .dag_order import lexicographic_order
from .errors import Location
from .json_values import Encoded
from .references import Reference, whole_references

if TYPE_CHECKING:
    import networkx as nx

FORMAT = 1
"""Version of the `to_dict()` layout, stored with every pinned run."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts in all (1 = no retry); backoff doubles from `backoff` up to `max_backoff`."""

    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.5
    """Each delay is multiplied by a random factor in [1 - jitter, 1]."""

    def delay(self, failed_attempts: int, random: float) -> float:
        """Seconds to wait after the `failed_attempts`-th failure; `random` in [0, 1)."""
        base = min(self.max_backoff, self.backoff * 2.0 ** max(0, failed_attempts - 1))
        return base * (1.0 - self.jitter * random)


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action as declared, with its dependencies made explicit."""

    name: str
    uses: str
    with_: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    depends_on: frozenset[str] = frozenset()
    """Every action this one waits for: referenced ones plus `needs`."""
    timeout: float | None = None
    retry: RetryPolicy = RetryPolicy()
    pivot: bool = False
    compensable: bool = True
    description: str = ""
    for_each: str | None = None
    """A reference to an array: the action runs once per element (a fan-out)."""
    max_parallel: int | None = None
    """With `for_each`: elements running at once (None: the run's `max_parallel`)."""
    location: Location | None = field(default=None, compare=False)
    condition: str | None = None
    """The `if:` as written (`${{ EXPR }}`); None: the action always runs."""
    child: CompiledSaga | None = None
    """For `uses: saga/NAME`: the child's definition, pinned with the parent's."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "uses": self.uses,
            "with": plain(self.with_),
            "needs": list(self.needs),
            "depends_on": sorted(self.depends_on),
            "timeout": self.timeout,
            "retry": {
                "attempts": self.retry.attempts,
                "backoff": self.retry.backoff,
                "max_backoff": self.retry.max_backoff,
                "jitter": self.retry.jitter,
            },
            "pivot": self.pivot,
            "compensable": self.compensable,
            "description": self.description,
        }
        # Only when set: the pinned form (and hash) of a saga without fan-out is unchanged.
        if self.for_each is not None:
            data["for_each"] = self.for_each
            data["max_parallel"] = self.max_parallel
        if self.condition is not None:  # absent otherwise: older pins keep their hash
            data["if"] = self.condition
        if self.child is not None:
            data["child"] = self.child._hashed()  # where its file lies is not part of it
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionSpec:
        return cls(
            name=data["name"],
            uses=data["uses"],
            with_=_frozen(data.get("with", {})),
            needs=tuple(data.get("needs", ())),
            depends_on=frozenset(data.get("depends_on", ())),
            timeout=data.get("timeout"),
            retry=RetryPolicy(**data.get("retry", {})),
            pivot=bool(data.get("pivot", False)),
            compensable=bool(data.get("compensable", True)),
            description=data.get("description", ""),
            for_each=data.get("for_each"),
            max_parallel=data.get("max_parallel"),
            condition=data.get("if"),
            child=CompiledSaga.from_dict(data["child"]) if "child" in data else None,
        )


@dataclass(frozen=True, slots=True)
class Concurrency:
    """Runs whose `key` (a template over the inputs) resolves alike run `limit` at once,
    the others queued in submission order (`sagactl.engine.parking`)."""

    key: str
    limit: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "limit": self.limit}


class CompiledSaga:
    """An immutable, validated saga. networkx is used inside and never handed out."""

    __slots__ = (
        "_actions",
        "_conditional",
        "_definition",
        "_dependencies",
        "_dependents",
        "_dependents_in_order",
        "_graph",
        "_hash",
        "_needs",
        "_order",
        "_plugin_uses",
        "_positions",
        "_whole_references",
        "concurrency",
        "description",
        "inputs",
        "name",
        "output_schema",
        "outputs",
        "retention",
        "source",
        "version",
    )

    def __init__(
        self,
        *,
        name: str,
        version: int | str,
        actions: Mapping[str, ActionSpec],
        inputs: Mapping[str, Mapping[str, Any]] | None = None,
        description: str = "",
        source: str | None = None,
        retention: float | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        concurrency: Concurrency | None = None,
    ) -> None:
        self.name = name
        self.retention = retention
        """Seconds a finished run is kept (None: the store-wide default)."""
        self.concurrency = concurrency
        self.version = version
        self.description = description
        self.source = source
        self.inputs: Mapping[str, Mapping[str, Any]] = _frozen(inputs or {})
        self.outputs: Mapping[str, Any] = _frozen(outputs or {})
        """`outputs:`: name -> a value holding references, resolved when the run succeeds."""
        self.output_schema: Mapping[str, Any] = _frozen(
            output_schema or {"type": "object", "properties": {}}
        )
        """The outputs' JSON Schema, as far as the compiler knows their types."""
        self._actions: Mapping[str, ActionSpec] = MappingProxyType(dict(actions))
        order = lexicographic_order({n: s.depends_on for n, s in self._actions.items()})
        self._graph: nx.DiGraph[str] | None = None
        if order is None:
            raise ValueError("cycle: " + " -> ".join(self._cycle()))
        self._order: tuple[str, ...] = order
        # Asked once per action per run by the scheduler: worked out once here.
        self._dependencies = {n: frozenset(s.depends_on) for n, s in self._actions.items()}
        dependents: dict[str, set[str]] = {n: set() for n in self._actions}
        for name, spec in self._actions.items():
            for dep in spec.depends_on:
                dependents.setdefault(dep, set()).add(name)
        self._dependents = {n: frozenset(after) for n, after in dependents.items()}
        self._needs = MappingProxyType(self._dependencies)
        self._positions = MappingProxyType({name: i for i, name in enumerate(order)})
        self._dependents_in_order = {
            n: tuple(sorted(after, key=self._positions.__getitem__))
            for n, after in dependents.items()
        }
        # What every run asks of the definition, not of the run: worked out once here.
        self._plugin_uses = tuple(
            sorted({s.uses for s in self._actions.values() if s.child is None})
        )
        self._conditional = any(s.condition is not None for s in self._actions.values())
        self._definition: Encoded | None = None
        self._whole_references: dict[str, tuple[tuple[str, Reference], ...] | None] = {}
        self._hash = hashlib.sha256(
            json.dumps(
                self._hashed(), sort_keys=True, separators=(",", ":"), allow_nan=False
            ).encode()
        ).hexdigest()

    # -- structure ---------------------------------------------------------------------

    @property
    def actions(self) -> Mapping[str, ActionSpec]:
        return self._actions

    @property
    def _dag(self) -> nx.DiGraph[str]:
        """The frozen networkx DAG, built on first use (execution and drawings)."""
        if self._graph is None:
            self._graph = self._networkx()
        return self._graph

    def _networkx(self) -> nx.DiGraph[str]:
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self._actions)
        for spec in self._actions.values():
            for dep in spec.depends_on:
                graph.add_edge(dep, spec.name)
        return nx.freeze(graph)

    def _cycle(self) -> list[str]:
        """A cycle as networkx finds it, closed (`a -> b -> a`): only for a broken pin."""
        import networkx as nx

        cycle = [edge[0] for edge in nx.find_cycle(self._networkx())]
        return [*cycle, cycle[0]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def dependencies(self, action: str) -> frozenset[str]:
        return self._dependencies[action]

    def dependents(self, action: str) -> frozenset[str]:
        return self._dependents[action]

    def dependents_in_order(self, action: str) -> tuple[str, ...]:
        """`dependents`, in topological order."""
        return self._dependents_in_order[action]

    @property
    def needs(self) -> Mapping[str, frozenset[str]]:
        """Action -> its `dependencies`, as one mapping (for lookups in a loop)."""
        return self._needs

    @property
    def positions(self) -> Mapping[str, int]:
        """Action -> its place in `topological_order`."""
        return self._positions

    def ancestors(self, action: str) -> frozenset[str]:
        import networkx as nx

        return frozenset(nx.ancestors(self._dag, action))

    def topological_order(self) -> tuple[str, ...]:
        """A deterministic topological order (ties broken by name)."""
        return self._order

    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Actions grouped by longest-path depth: each layer depends only on earlier ones."""
        import networkx as nx

        return tuple(tuple(sorted(layer)) for layer in nx.topological_generations(self._dag))

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Dependency edges (source runs first), sorted."""
        return tuple(sorted(self._dag.edges()))

    def roots(self) -> tuple[str, ...]:
        return tuple(a for a in self._order if not self._dag.in_degree(a))

    @property
    def plugin_uses(self) -> tuple[str, ...]:
        """The `uses` of its plugin actions (not its child sagas'), sorted, each once: what a
        run pins the versions of."""
        return self._plugin_uses

    @property
    def conditional(self) -> bool:
        """Some action has an `if:` (most sagas have none: no action is ever skipped)."""
        return self._conditional

    def whole_references(self, action: str) -> tuple[tuple[str, Reference], ...] | None:
        """`action`'s `with:` as its keys and their references, when each value is exactly
        one reference (`references.whole_references`); worked out once per action, as the
        saga never changes."""
        plans = self._whole_references
        if action in plans:
            return plans[action]
        plan = plans[action] = whole_references(self._actions[action].with_)
        return plan

    def pivots(self) -> tuple[str, ...]:
        return tuple(a for a in self._order if self._actions[a].pivot)

    # -- identity ----------------------------------------------------------------------

    @property
    def canonical_hash(self) -> str:
        """sha256 of the compiled form: stable across key order, formatting and comments."""
        return self._hash

    def _hashed(self) -> dict[str, Any]:
        data = self.to_dict()
        data.pop("source", None)
        return data

    def children(self) -> Iterator[CompiledSaga]:
        """Every child saga (`uses: saga/NAME`) at any depth, parents before children."""
        for spec in self._actions.values():
            if spec.child is not None:
                yield spec.child
                yield from spec.child.children()

    def definition(self) -> Encoded:
        """`to_dict()` with its JSON text, worked out once: what every run of it pins."""
        if self._definition is None:
            self._definition = Encoded(self.to_dict())
        return self._definition

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "source": self.source,
            "inputs": plain(self.inputs),
            "actions": {name: self._actions[name].to_dict() for name in sorted(self._actions)},
        }
        if self.retention is not None:  # absent when unset: older sagas keep their hash
            data["retention"] = self.retention
        if self.outputs:  # absent when empty: the hashes of older definitions stand
            data["outputs"] = plain(self.outputs)
            data["output_schema"] = plain(self.output_schema)
        if self.concurrency is not None:  # absent otherwise: older sagas keep their hash
            data["concurrency"] = self.concurrency.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompiledSaga:
        if data.get("format") != FORMAT:
            raise ValueError(f"compiled saga format {data.get('format')!r} is not {FORMAT}")
        return cls(
            name=data["name"],
            version=data["version"],
            description=data.get("description", ""),
            source=data.get("source"),
            inputs=data.get("inputs", {}),
            actions={n: ActionSpec.from_dict(a) for n, a in data["actions"].items()},
            retention=data.get("retention"),
            outputs=data.get("outputs"),
            output_schema=data.get("output_schema"),
            concurrency=Concurrency(**data["concurrency"]) if data.get("concurrency") else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompiledSaga) and other._hash == self._hash

    def __hash__(self) -> int:
        return hash(self._hash)

    def __repr__(self) -> str:
        return f"<CompiledSaga {self.name} v{self.version} {len(self)} actions {self._hash[:12]}>"


def _frozen(value: Any) -> Any:
    """A read-only deep copy of JSON-like data (mappings become MappingProxyType)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


freeze = _frozen
"""A read-only deep copy of JSON-like data, as the compiled form holds it."""


def plain(value: Any) -> Any:
    """Plain JSON types back from `_frozen` data."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
