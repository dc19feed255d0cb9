"""sagactl's generic engine: definitions, compilation, plugins, scheduling, the durable log.

It knows nothing of builds. Everything public is re-exported here, imported on first use:
`from sagactl.engine import Store` must not pull in the compiler (networkx, jsonschema) and
the scheduler, so that `sagactl status` starts like a native tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .lazy_exports import lazy_exports as _lazy_exports

if _TYPE_CHECKING:
    from .action import JSON as JSON
    from .action import Action as Action
    from .action import ActionCatalog as ActionCatalog
    from .action import ActionContext as ActionContext
    from .action import ActionFactory as ActionFactory
    from .action import ActionInfo as ActionInfo
    from .action import Inputs as Inputs
    from .action import Outputs as Outputs
    from .action import Transaction as Transaction
    from .action_plugins import ActionRegistry as ActionRegistry
    from .api import Engine as Engine
    from .api import RunResult as RunResult
    from .api import run_saga_async as run_saga_async
    from .compiler import compile_definition as compile_definition
    from .compiler import load_saga_file as load_saga_file
    from .deps import Dependencies as Dependencies
    from .deps import MissingDependency as MissingDependency
    from .errors import Cancelled as Cancelled
    from .errors import DefinitionError as DefinitionError
    from .errors import DefinitionErrors as DefinitionErrors
    from .errors import FatalError as FatalError
    from .errors import InputError as InputError
    from .errors import Location as Location
    from .errors import PluginError as PluginError
    from .errors import RetryableError as RetryableError
    from .errors import RunNotFound as RunNotFound
    from .errors import SagaError as SagaError
    from .events import Event as Event
    from .events import EventHandler as EventHandler
    from .events import EventKind as EventKind
    from .model import ActionSpec as ActionSpec
    from .model import CompiledSaga as CompiledSaga
    from .model import RetryPolicy as RetryPolicy
    from .plugins import Plugins as Plugins
    from .plugins import load_plugins as load_plugins
    from .saga_registry import SagaRegistry as SagaRegistry
    from .states import ActionState as ActionState
    from .states import RunState as RunState
    from .store import RunExists as RunExists
    from .store import Store as Store
    from .store import StoreError as StoreError
    from .store import open_store as open_store
    from .sync import run_saga as run_saga

_EXPORTS: dict[str, str] = {
    "JSON": ".action",
    "Action": ".action",
    "ActionCatalog": ".action",
    "ActionContext": ".action",
    "ActionFactory": ".action",
    "ActionInfo": ".action",
    "Inputs": ".action",
    "Outputs": ".action",
    "Transaction": ".action",
    "ActionRegistry": ".action_plugins",
    "Engine": ".api",
    "RunResult": ".api",
    "run_saga_async": ".api",
    "compile_definition": ".compiler",
    "load_saga_file": ".compiler",
    "Dependencies": ".deps",
    "MissingDependency": ".deps",
    "Cancelled": ".errors",
    "DefinitionError": ".errors",
    "DefinitionErrors": ".errors",
    "FatalError": ".errors",
    "InputError": ".errors",
    "Location": ".errors",
    "PluginError": ".errors",
    "RetryableError": ".errors",
    "RunNotFound": ".errors",
    "SagaError": ".errors",
    "Event": ".events",
    "EventHandler": ".events",
    "EventKind": ".events",
    "ActionSpec": ".model",
    "CompiledSaga": ".model",
    "RetryPolicy": ".model",
    "Plugins": ".plugins",
    "load_plugins": ".plugins",
    "SagaRegistry": ".saga_registry",
    "ActionState": ".states",
    "RunState": ".states",
    "RunExists": ".store",
    "Store": ".store",
    "StoreError": ".store",
    "open_store": ".store",
    "run_saga": ".sync",
}
"""Each public name and the module that defines it."""

__all__ = [
    "JSON",
    "Action",
    "ActionCatalog",
    "ActionContext",
    "ActionFactory",
    "ActionInfo",
    "ActionRegistry",
    "ActionSpec",
    "ActionState",
    "Cancelled",
    "CompiledSaga",
    "DefinitionError",
    "DefinitionErrors",
    "Dependencies",
    "Engine",
    "Event",
    "EventHandler",
    "EventKind",
    "FatalError",
    "InputError",
    "Inputs",
    "Location",
    "MissingDependency",
    "Outputs",
    "PluginError",
    "Plugins",
    "RetryPolicy",
    "RetryableError",
    "RunExists",
    "RunNotFound",
    "RunResult",
    "RunState",
    "SagaError",
    "SagaRegistry",
    "Store",
    "StoreError",
    "Transaction",
    "compile_definition",
    "load_plugins",
    "load_saga_file",
    "open_store",
    "run_saga",
    "run_saga_async",
]


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, __all__)
