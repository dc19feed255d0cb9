"""`dag_order.lexicographic_order`: the order networkx gives, without networkx."""

from __future__ import annotations

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st
from sagactl.engine.dag_order import lexicographic_order

names = st.sampled_from(list("abcdefgh"))
graphs = st.dictionaries(names, st.sets(names, max_size=3), max_size=8)


class TestLexicographicOrder:
    @given(graphs)
    def test_same_as_networkx(self, depends_on: dict[str, set[str]]) -> None:
        """The same order as `lexicographical_topological_sort`, and None on a cycle."""
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(depends_on)
        graph.add_edges_from((dep, name) for name, deps in depends_on.items() for dep in deps)
        expected = (
            tuple(nx.lexicographical_topological_sort(graph))
            if nx.is_directed_acyclic_graph(graph)
            else None
        )
        assert lexicographic_order(depends_on) == expected

    def test_ties_by_name_and_cycles(self) -> None:
        """Ready actions go smallest name first; a self-dependency is a cycle."""
        assert lexicographic_order({"c": [], "b": [], "a": ["c"]}) == ("b", "c", "a")
        assert lexicographic_order({"a": ["a"]}) is None
        assert lexicographic_order({"a": ["b"], "b": ["a"], "c": []}) is None
