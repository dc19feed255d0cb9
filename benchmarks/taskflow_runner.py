"""Peer (c): OpenStack TaskFlow running a workload DAG as a graph flow, persisted to SQLite."""

from __future__ import annotations

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from taskflow import engines, task
from taskflow.patterns import graph_flow
from taskflow.persistence import backends, models

from .workloads import Dag, noop


class _Noop(task.Task):  # type: ignore[misc]
    """Calls the shared no-op with its dependencies' results; provides its own name."""

    def execute(self, **deps: Any) -> Any:
        return noop(deps)["done"]


class TaskflowRunner:
    """One SQLite persistence backend (SQLAlchemy, a real file) and one reusable flow.

    Each run gets its own logbook and flow detail, as a service would: TaskFlow then
    records every task's state change and result in the file. The parallel engine shares
    one thread pool across runs so independent tasks overlap, as the DAG allows.
    """

    def __init__(self, dag: Dag, path: Path, workers: int = 8) -> None:
        self.url = f"sqlite:///{path}"
        self._backend = backends.fetch({"connection": self.url})
        with contextlib.closing(self._backend.get_connection()) as conn:
            conn.upgrade()
        self._flow = graph_flow.Flow(dag.name)
        tasks = [_Noop(name=n, provides=n, requires=list(d)) for n, d in dag.needs.items()]
        self._flow.add(*tasks)
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self.size = len(dag)

    def run(self) -> dict[str, Any]:
        """One durable run of the flow; returns every task's result."""
        book = models.LogBook(f"book-{uuid.uuid4()}")
        detail = models.FlowDetail(self._flow.name, uuid=str(uuid.uuid4()))
        book.add(detail)
        with contextlib.closing(self._backend.get_connection()) as conn:
            conn.save_logbook(book)
        engine = engines.load(
            self._flow,
            flow_detail=detail,
            book=book,
            backend=self._backend,
            engine="parallel",
            executor=self._executor,
        )
        engine.run()
        return dict(engine.storage.fetch_all())

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._backend.close()
