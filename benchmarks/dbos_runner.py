"""Peer (d): DBOS Transact running a workload DAG as one workflow of steps, on SQLite (or on
PostgreSQL, for the worker benchmark)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig

from .workloads import Dag, noop


@DBOS.step()
async def _noop_step(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return noop(inputs)


@DBOS.workflow()
async def _dag_workflow(needs: Mapping[str, list[str]], layers: list[list[str]]) -> dict[str, Any]:
    """Runs each layer's steps at once (asyncio.gather, in a fixed order so step ids are
    deterministic, as DBOS recovery requires)."""
    outputs: dict[str, Any] = {}
    for layer in layers:
        results = await asyncio.gather(
            *(
                _noop_step(name, {dep: outputs[dep]["done"] for dep in needs[name]})
                for name in layer
            )
        )
        outputs.update(zip(layer, results, strict=True))
    return outputs


class DbosRunner:
    """DBOS launched on an SQLite system database file (or the database at `url`); one
    workflow per run."""

    def __init__(self, dag: Dag, path: Path | None = None, *, url: str | None = None) -> None:
        if (path is None) == (url is None):
            raise ValueError("DbosRunner: give a path or a url")
        self.url = url or f"sqlite:///{path}"
        self._needs = {name: list(deps) for name, deps in dag.needs.items()}
        self._layers = [list(layer) for layer in dag.layers()]
        self.size = len(dag)
        config: DBOSConfig = {
            "name": "sagactl-bench",
            "system_database_url": self.url,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()

    async def run(self) -> dict[str, Any]:
        """One durable workflow run; returns every step's output."""
        result: dict[str, Any] = await _dag_workflow(self._needs, self._layers)
        return result

    def close(self) -> None:
        DBOS.destroy(destroy_registry=False)
