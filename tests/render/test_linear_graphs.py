"""Issue 10 item 12: the compensation order is computed in linear passes, and is exactly
what the quadratic definitions (every ancestor of every action) give."""

from __future__ import annotations

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st
from sagactl.engine import CompiledSaga
from sagactl.engine.ordering import depth_after, nearest_after
from sagactl.engine.render import render
from sagactl.engine.render.facts import (
    compensation_edges,
    compensation_stages,
    rolls_forward,
    undoable,
)

from .sagas import saga, spec

CHAIN = 10_000


@st.composite
def sagas(draw: st.DrawFn) -> CompiledSaga:
    """A random DAG of up to 12 actions, some pivots, some irreversible."""
    size = draw(st.integers(1, 12))
    names = [f"a{i:02d}" for i in range(size)]
    return saga(
        "random",
        *(
            spec(
                name,
                draw(st.sets(st.sampled_from(names[:i]))) if i else (),
                pivot=draw(st.integers(0, 9)) == 0,
                compensable=draw(st.integers(0, 3)) > 0,
            )
            for i, name in enumerate(names)
        ),
    )


def _graph(s: CompiledSaga) -> nx.DiGraph[str]:
    graph: nx.DiGraph[str] = nx.DiGraph(s.edges())
    graph.add_nodes_from(s.actions)
    return graph


def _order_graph(s: CompiledSaga, among: set[str]) -> nx.DiGraph[str]:
    """The definition: among `among`, a -> b when a runs before b, transitively reduced."""
    graph, order = _graph(s), nx.DiGraph()
    order.add_nodes_from(among)
    for later in among:
        order.add_edges_from((earlier, later) for earlier in nx.ancestors(graph, later) & among)
    reduced: nx.DiGraph[str] = nx.transitive_reduction(order)
    return reduced


class TestAgainstTheDefinitions:
    @settings(max_examples=300, deadline=None)
    @given(sagas(), st.data())
    def test_nearest_and_depth_match_the_closure(
        self, s: CompiledSaga, data: st.DataObject
    ) -> None:
        """nearest_after is the transitive reduction over any subset; depth_after its
        longest chain after each action."""
        among = data.draw(st.sets(st.sampled_from(sorted(s.actions))))
        reduced = _order_graph(s, among)
        nearest = nearest_after(s, among)
        assert set(nearest) == among
        assert {(a, b) for a in nearest for b in nearest[a]} == set(reduced.edges())
        longest = {n: max((len(p) - 1 for p in _paths_from(reduced, n)), default=0) for n in among}
        assert dict(depth_after(s, among)) == longest

    @settings(max_examples=300, deadline=None)
    @given(sagas())
    def test_facts_match_the_closure(self, s: CompiledSaga) -> None:
        """Rolling forward, the compensation edges and the stages, as defined on ancestors."""
        graph, pivots = _graph(s), set(s.pivots())
        forward = {a for a in s.actions if a in pivots or nx.ancestors(graph, a) & pivots}
        assert set(rolls_forward(s)) == forward
        reduced = _order_graph(s, set(undoable(s)))
        assert compensation_edges(s) == tuple(sorted((b, a) for a, b in reduced.edges()))
        stages = tuple(
            tuple(sorted(stage)) for stage in nx.topological_generations(reduced.reverse())
        )
        assert compensation_stages(s) == stages


def _paths_from(graph: nx.DiGraph[str], node: str) -> list[list[str]]:
    return [[node]] + [[node, *p] for n in graph.successors(node) for p in _paths_from(graph, n)]


class TestTenThousandActions:
    def test_chain(self) -> None:
        """A 10,000-action chain: each action undone right after the one that followed it,
        drawn in every text format (the quadratic version took minutes and gigabytes)."""
        names = [f"a{i:05d}" for i in range(CHAIN)]
        s = saga("chain", *(spec(n, [names[i - 1]] if i else ()) for i, n in enumerate(names)))
        assert compensation_edges(s) == tuple(sorted(zip(names[1:], names, strict=False)))
        assert compensation_stages(s) == tuple((n,) for n in reversed(names))
        for fmt in ("text", "dot", "mermaid"):
            drawing = render(s, fmt)
            assert isinstance(drawing, str) and names[-1] in drawing

    def test_pivot_in_the_middle(self) -> None:
        """Everything from a pivot halfway on rolls forward; the first half is undoable."""
        names = [f"a{i:05d}" for i in range(CHAIN)]
        half = CHAIN // 2
        s = saga(
            "chain",
            *(spec(n, [names[i - 1]] if i else (), pivot=i == half) for i, n in enumerate(names)),
        )
        assert rolls_forward(s) == tuple(names[half:])
        assert undoable(s) == tuple(names[:half])
