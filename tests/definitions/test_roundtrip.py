"""Hypothesis: generated DAG definitions survive YAML -> validate -> compile -> JSON intact."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sagactl.engine import CompiledSaga
from sagactl.engine.compiler import load_saga_file


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """A valid definition and the dependency edges it implies (as reference or as `needs`)."""
    count = draw(st.integers(1, 12))
    names = [f"step_{i}" for i in range(count)]
    actions: dict[str, Any] = {}
    edges: set[tuple[str, str]] = set()
    for index, name in enumerate(names):
        deps = draw(st.lists(st.sampled_from(names[:index]), unique=True)) if index else []
        as_needs = draw(st.lists(st.booleans(), min_size=len(deps), max_size=len(deps)))
        refs = [d for d, need in zip(deps, as_needs, strict=True) if not need]
        needs = [d for d, need in zip(deps, as_needs, strict=True) if need]
        body: dict[str, Any] = {
            "uses": "test.echo",
            "with": {
                "text": " ".join(f"${{{{ actions.{r}.outputs.text }}}}" for r in refs) or "hi"
            },
        }
        if needs:
            body["needs"] = needs
        if draw(st.booleans()):
            body["timeout"] = draw(st.sampled_from(["500ms", "10s", "1h30m", 30]))
        if draw(st.booleans()):
            body["retry"] = {"attempts": draw(st.integers(1, 5))}
        actions[name] = body
        edges.update((dep, name) for dep in deps)
    definition = {
        "apiVersion": "sagactl/v1",
        "kind": "Saga",
        "metadata": {"name": "generated", "version": draw(st.integers(1, 99))},
        "defaults": {"timeout": "10m", "retry": {"attempts": 3, "backoff": "1s"}},
        "actions": actions,
    }
    return definition, edges


def _compile(text: str, catalog: Any) -> CompiledSaga:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.yaml"
        path.write_text(text, encoding="utf-8")
        return load_saga_file(path, catalog)


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same data with every mapping's keys (and `needs` lists) in a random order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {
            key: rng.sample(value[key], len(value[key]))
            if key == "needs"
            else _shuffled(value[key], rng)
            for key in keys
        }
    return value


class TestRoundTrip:
    @settings(max_examples=60, deadline=None)
    @given(dags())
    def test_edges_survive(self, catalog, case) -> None:
        """Compiled edges are exactly the generated ones, and survive to_dict/JSON/from_dict."""
        definition, edges = case
        saga = _compile(yaml.safe_dump(definition, sort_keys=False), catalog)
        assert set(saga.edges()) == edges
        assert len(saga) == len(definition["actions"])
        restored = CompiledSaga.from_dict(json.loads(json.dumps(saga.to_dict())))
        assert restored.edges() == saga.edges()
        assert restored.canonical_hash == saga.canonical_hash
        order = saga.topological_order()
        assert all(order.index(a) < order.index(b) for a, b in edges)

    @settings(max_examples=60, deadline=None)
    @given(dags(), st.randoms(use_true_random=False))
    def test_hash_ignores_key_order_and_formatting(self, catalog, case, rng) -> None:
        """Shuffled keys, another layout and comments leave the canonical hash unchanged."""
        definition, _ = case
        first = _compile(yaml.safe_dump(definition, sort_keys=False), catalog)
        text = yaml.safe_dump(
            _shuffled(definition, rng),
            sort_keys=False,
            default_flow_style=rng.choice([None, True, False]),
            indent=rng.choice([2, 4]),
            width=rng.choice([40, 200]),
        )
        again = _compile("# reformatted\n" + text + "# end\n", catalog)
        assert again.canonical_hash == first.canonical_hash
        assert again == first

    @settings(max_examples=30, deadline=None)
    @given(dags())
    def test_hash_sees_meaning(self, catalog, case) -> None:
        """A change that matters (a literal input) changes the hash."""
        definition, _ = case
        first = _compile(yaml.safe_dump(definition), catalog)
        name = next(iter(definition["actions"]))
        definition["actions"][name]["with"]["text"] += " changed"
        assert _compile(yaml.safe_dump(definition), catalog).canonical_hash != first.canonical_hash
