"""Run by the plugin tests inside their venv: what `load_plugins()` finds, as JSON on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import acme_saga
from acme_broken.wrong import Clock
from acme_saga.notify import HttpClient
from sagactl.engine import Dependencies, PluginError
from sagactl.engine.plugins import load_plugins, reset_plugins
from sagactl.engine.saga_registry import SagaRegistry, definition_folders
from sagactl.plugins.builders.base import BUILDERS


def error(exc: PluginError) -> dict[str, Any]:
    return {
        "group": exc.group,
        "name": exc.name,
        "distribution": exc.distribution,
        "distributions": list(exc.distributions),
        "message": str(exc),
    }


def attempt(call: Callable[[], Any]) -> Any:
    try:
        return {"ok": call()}
    except PluginError as exc:
        return {"error": error(exc)}


def main() -> None:
    plugins = load_plugins()
    actions = plugins.actions
    report: dict[str, Any] = {
        "actions": {
            info.name: {
                "distribution": info.distribution,
                "version": info.version,
                "compensable": info.compensable,
                "description": info.description,
                "input_schema": info.input_schema,
                "output_schema": info.output_schema,
            }
            for info in actions.infos()
        },
        "errors": [error(e) for e in plugins.errors],
        "factory_calls_to_describe": list(acme_saga.FACTORY_CALLS),
        "definitions": {
            p.name: {
                "distribution": p.distribution,
                "folder": str(p.obj),
                "files": sorted(f.name for f in Path(p.obj).glob("*.yaml")),
            }
            for p in plugins.definitions
        },
        "definition_folders": [str(folder) for folder in definition_folders()],
        "saga_paths": {
            name: str(SagaRegistry(actions).path(name))
            for name in ("acme-notify", "acme-page-oncall")
        },
        "builders": list(plugins.registry(BUILDERS).names()),
        "commands": list(plugins.commands.names()),
        "cached": load_plugins() is plugins,
        "notify_info": actions.info("acme.notify") is not None,
        "notify_error_for": (lambda e: error(e) if e else None)(actions.error_for("acme.notify")),
    }
    client = HttpClient()
    deps = Dependencies()
    deps.provide(HttpClient, client)

    def notify() -> Mapping[str, Any]:
        action = actions.create("acme.notify", deps)
        return {"class": type(action).__qualname__, "client_is_provided": action.client is client}

    report["create_notify"] = attempt(notify)
    report["create_notify_without_deps"] = attempt(
        lambda: type(actions.create("acme.notify", Dependencies())).__qualname__
    )
    report["create_unknown"] = attempt(lambda: actions.create("acme.nope", deps))
    report["create_page"] = attempt(lambda: type(actions.create("acme.page", deps)).__qualname__)

    def builder() -> Mapping[str, Any]:
        made: Any = plugins.registry(BUILDERS).create("acme-builder", deps)
        return {"builder": made["builder"], "same_deps": made["deps"] is deps}

    report["builder"] = attempt(builder)

    clock = Dependencies()
    clock.provide(Clock, Clock())
    with_clock = load_plugins(clock)
    report["with_clock"] = {
        "needs_deps_info": with_clock.actions.info("broken.needs-deps") is not None,
        "errors": [e.name for e in with_clock.errors],
        "shared": with_clock is plugins,
    }
    reset_plugins()
    report["fresh_after_reset"] = load_plugins() is not plugins
    print(json.dumps(report, default=lambda value: dict(value)))


if __name__ == "__main__":
    main()
