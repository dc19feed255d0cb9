"""Drawings of a compiled saga: text, Mermaid, DOT, JSON, and SVG/PNG through Graphviz.

Every format is deterministic (sorted), so checked-in golden files stay stable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import InputError
from ..model import CompiledSaga
from . import dot, graph_json, graphviz, mermaid, text
from .facts import STATES as STATES
from .facts import Counts

FORMATS = ("text", "mermaid", "dot", "json", "svg", "png")

_TEXT_FORMATS: dict[str, Callable[[CompiledSaga, Mapping[str, str] | None, Counts | None], str]] = {
    "text": text.render,
    "mermaid": mermaid.render,
    "dot": dot.render,
    "json": graph_json.render,
}


def render(
    saga: CompiledSaga,
    fmt: str,
    *,
    states: Mapping[str, str] | None = None,
    counts: Counts | None = None,
) -> str | bytes:
    """`saga` drawn in `fmt`; with `states` (action -> state), each action's state shown,
    and with `counts` each fan-out's elements done of all.

    svg is returned as text, png as bytes. Raises InputError for an unknown format or
    when Graphviz is needed and missing.
    """
    if fmt in _TEXT_FORMATS:
        return _TEXT_FORMATS[fmt](saga, states, counts)
    if fmt in ("svg", "png"):
        image = graphviz.run_dot(dot.render(saga, states, counts), fmt)
        return image.decode("utf-8") if fmt == "svg" else image
    raise InputError(f"unknown graph format '{fmt}': use one of {', '.join(FORMATS)}")


__all__ = ["FORMATS", "STATES", "render"]
