"""Compiles a loaded saga definition into an immutable CompiledSaga, or lists all that is wrong.

Checks, each reported at the offending node's `file:line:column`, all in one pass: the
schema (unknown keys, types, apiVersion/kind, empty `actions`), unknown `uses`,
references to unknown inputs, actions or outputs (or to the action itself), `needs`
naming unknown actions, literal `with:` values that break the action's input schema
(values holding references are only known at run time and are skipped), timeouts and
retry policies, dependency cycles (named: `a -> b -> a`), and `if:` conditions (parsed
by `sagactl.engine.expressions`, their references checked as `with:`'s are and their
operand types against the declared schemas). References are looked up, never evaluated.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Set
from typing import TYPE_CHECKING, Any

from . import expressions, references
from .action import ActionCatalog, ActionInfo
from .child_sagas import ChildCatalog, SagaLookup, child_name
from .compile_parking import concurrency_of, definition_problems
from .dag_order import lexicographic_order
from .durations import parse_duration
from .errors import DefinitionError, DefinitionErrors, Location
from .expression_types import type_problems
from .fanout_schema import RESULTS, field_schema, items_of, results_schema
from .fanout_schema import declares as _declares
from .fanout_schema import types_of as _types_of
from .model import ActionSpec, CompiledSaga, RetryPolicy, freeze
from .quickschema import certainly_usable, certainly_valid, re2_search
from .saga_schema import (
    Locator,
    base_schema,
    describe_all,
    did_you_mean,
    dotted,
    locator_for,
    type_words,
    validate_definition,
)
from .yaml_loader import JSONPath, YamlDocument, YamlScalar, load_yaml

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

# Errors about which keys a `with:` has stand even when its values hold references.
_KEY_CHECKS = frozenset(
    {"required", "additionalProperties", "propertyNames", "dependentRequired", "minProperties"}
)

_ACTION_KEYS = frozenset(base_schema()["$defs"]["action"]["properties"])


def load_saga_file(
    path: str | os.PathLike[str], catalog: ActionCatalog, sagas: SagaLookup | None = None
) -> CompiledSaga:
    """Load, validate and compile one definition file."""
    return compile_definition(load_yaml(path), catalog=catalog, sagas=sagas)


def compile_definition(
    document: YamlDocument | Mapping[str, Any],
    *,
    catalog: ActionCatalog,
    source: str | None = None,
    sagas: SagaLookup | None = None,
) -> CompiledSaga:
    """The compiled saga, or DefinitionErrors listing every problem, sorted by position.

    `document` is a loaded YAML file (errors then carry line:column) or plain data
    (errors name `source` only). `sagas` finds the children of `uses: saga/NAME`.
    """
    if isinstance(document, YamlDocument):
        data: Any = document.data
        source = source or document.file
    else:
        data = document
        source = source or "<definition>"
    return _Compiler(data, catalog, locator_for(document, source), source, sagas).run()


class _Compiler:
    def __init__(
        self,
        data: Any,
        catalog: ActionCatalog,
        where: Locator,
        source: str,
        sagas: SagaLookup | None = None,
    ) -> None:
        self.data = data
        own = _mapping(_mapping(data).get("metadata")).get("name")
        self.catalog = ChildCatalog(catalog, sagas, own if isinstance(own, str) else None)
        self.where = where
        self.source = source
        self.errors: list[DefinitionError] = []
        self.validators: dict[str, Validator | None] = {}

    def fail(
        self, path: JSONPath, message: str, *, key: bool = False, offset: int | None = None
    ) -> None:
        """Report `message` at `path` (its key with `key`; character `offset` of a string)."""
        prefix = dotted(path[:-1] if key else path)
        location = self.where.locate(path, key=key)
        node = self.where.node_at(path) if offset is not None else None
        if isinstance(node, YamlScalar) and offset is not None:
            location = node.at_offset(offset)
        self.errors.append(DefinitionError(f"{prefix}: {message}" if prefix else message, location))

    def run(self) -> CompiledSaga:
        self.errors.extend(validate_definition(self.data, self.where))
        data = self.data if isinstance(self.data, Mapping) else {}
        inputs = _mapping(data.get("inputs"))
        actions = _mapping(data.get("actions"))
        self.check_input_schemas(inputs)
        defaults = _mapping(data.get("defaults"))
        default_timeout = self.duration(defaults.get("timeout"), ("defaults", "timeout"))
        default_retry = _mapping(defaults.get("retry"))
        specs: dict[str, ActionSpec] = {}
        for name, body in actions.items():
            if isinstance(body, Mapping):
                spec = self.action(name, body, actions, inputs, default_timeout, default_retry)
                if spec is not None:
                    specs[name] = spec
        self.check_cycles(specs)
        retention = self.duration(data.get("retention"), ("retention",))
        outputs = data.get("outputs")
        output_schema = (
            self.check_outputs(outputs, actions, inputs) if isinstance(outputs, Mapping) else None
        )
        for path, problem in definition_problems(actions):
            self.fail(path, problem)
        concurrency, problems = concurrency_of(data.get("concurrency"), inputs)
        for path, problem in problems:
            self.fail(path, problem)
        if self.errors:
            raise DefinitionErrors(self.errors)
        metadata = _mapping(data.get("metadata"))
        return CompiledSaga(
            name=metadata["name"],
            version=metadata.get("version", 1),
            description=metadata.get("description", ""),
            inputs=inputs,
            actions=specs,
            source=self.source,
            retention=retention,
            outputs=outputs if isinstance(outputs, Mapping) else None,
            output_schema=output_schema,
            concurrency=concurrency,
        )

    # -- parts -----------------------------------------------------------------------

    def check_input_schemas(self, inputs: Mapping[str, Any]) -> None:
        for name, schema in inputs.items():
            if isinstance(schema, Mapping) and not certainly_usable(schema):
                from .json_schema import schema_problems  # jsonschema: only when in doubt

                for path, problem in schema_problems(schema):
                    self.fail(("inputs", name, *path), problem)

    def action(
        self,
        name: str,
        body: Mapping[str, Any],
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
        default_timeout: float | None,
        default_retry: Mapping[str, Any],
    ) -> ActionSpec | None:
        here = ("actions", name)
        uses = body.get("uses")
        info = self.catalog.info(uses) if isinstance(uses, str) else None
        problem = self.catalog.problem(uses) if isinstance(uses, str) else None
        if problem is not None:
            self.fail((*here, "uses"), problem)
        elif isinstance(uses, str) and info is None:
            hint = did_you_mean(uses, self.catalog.names()) or (
                " (no actions are installed)"
                if not self.catalog.names()
                else " (`sagactl actions` lists the installed ones)"
            )
            self.fail((*here, "uses"), f"unknown action '{uses}'{hint}")
        with_ = body.get("with", {})
        for_each, depends = self.check_for_each(name, body, actions, inputs)
        if isinstance(with_, Mapping):
            depends |= self.check_references(name, with_, actions, inputs)
            # A misspelt key (`wiht:`) is reported as such, not as every input missing.
            if info is not None and set(body) <= _ACTION_KEYS:
                self.check_literals(name, info, with_)
                self.check_reference_types(name, info, with_, actions, inputs)
        condition = body.get("if")
        if isinstance(condition, str):
            depends |= self.check_condition(name, condition, actions, inputs)
        needs = body.get("needs", [])
        if isinstance(needs, list):
            for index, other in enumerate(needs):
                if isinstance(other, str) and self.known_action(
                    (*here, "needs", index), name, other, actions
                ):
                    depends.add(other)
        timeout = self.duration(body.get("timeout"), (*here, "timeout"))
        retry = self.retry(here, default_retry, _mapping(body.get("retry")))
        child_of = child_name(uses) if isinstance(uses, str) else None
        child = self.catalog.child(child_of) if child_of is not None else None
        if child_of is not None:
            # A child retries its own actions and compensates itself when it fails: run
            # once, and only under a timeout the definition gives it (not the defaults').
            if "retry" in body:
                self.fail((*here, "retry"), "a child saga is not retried: its actions are")
            if "for_each" in body:  # one child run per action: its id is RUN/ACTION
                self.fail((*here, "for_each"), "a child saga cannot be fanned out")
            retry, default_timeout = RetryPolicy(attempts=1), None
        compensate = body.get("compensate")
        if compensate is True and info is not None and not info.compensable:
            self.fail(
                (*here, "compensate"),
                f"'{info.name}' cannot be compensated (it has no compensation step); "
                "remove `compensate: true`",
            )
        if not isinstance(uses, str) or not isinstance(with_, Mapping):
            return None
        return ActionSpec(
            name=name,
            uses=uses,
            with_=freeze(with_),
            needs=tuple(sorted({n for n in needs if isinstance(n, str)}))
            if isinstance(needs, list)
            else (),
            depends_on=frozenset(depends),
            timeout=timeout if timeout is not None else default_timeout,
            retry=retry,
            pivot=body.get("pivot") is True,
            compensable=compensate is not False and (info is None or info.compensable),
            description=body.get("description", "")
            if isinstance(body.get("description"), str)
            else "",
            for_each=for_each,
            max_parallel=body.get("max_parallel") if for_each is not None else None,
            condition=condition if isinstance(condition, str) else None,
            location=self.where.locate(here, key=True),
            child=child if isinstance(child, CompiledSaga) else None,
        )

    def known_action(
        self, path: JSONPath, name: str, other: str, actions: Mapping[str, Any]
    ) -> bool:
        """Whether `other` is an action `name` may depend on; reports why not."""
        if other == name:
            self.fail(path, f"action '{name}' cannot depend on itself")
            return False
        if other not in actions:
            self.fail(path, f"unknown action '{other}'{did_you_mean(other, list(actions))}")
            return False
        return True

    def check_for_each(
        self,
        name: str,
        body: Mapping[str, Any],
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> tuple[str | None, set[str]]:
        """The `for_each` reference (None: not a fan-out) and the action it depends on;
        reports a `for_each` over something that is not an array."""
        here: JSONPath = ("actions", name, "for_each")
        value = body.get("for_each")
        if value is None:
            if "max_parallel" in body:
                self.fail(
                    ("actions", name, "max_parallel"),
                    "max_parallel limits the elements of a for_each, and this action has none",
                )
            return None, set()
        try:
            ref = references.whole(value) if isinstance(value, str) else None
        except references.BadReference as exc:
            self.fail(here, str(exc))
            return None, set()
        if ref is None:
            return None, set()  # not one reference: the schema reported it
        if ref.element:
            self.fail(here, f"for_each cannot iterate over its own '{ref.text}'")
            return None, set()
        depends = self.check_reference(here, name, ref, body, actions, inputs)
        schema, what = self.ref_schema(name, ref, actions, inputs)
        types = _types_of(schema)
        if types is not None and "array" not in types:
            self.fail(here, f"for_each needs an array, but {what} is {type_words(sorted(types))}")
        return value, depends

    def check_references(
        self,
        name: str,
        with_: Mapping[str, Any],
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
        base: JSONPath | None = None,
    ) -> set[str]:
        """The actions `with_` (at `base`, default `actions.NAME.with`) refers to; reports
        every reference that cannot be looked up."""
        depends: set[str] = set()
        body = _mapping(actions.get(name))
        for path, text in _strings(with_, tuple(base or ("actions", name, "with"))):
            try:
                found = list(references.in_string(text))
            except references.BadReference as exc:
                self.fail(path, str(exc))
                continue
            for ref in found:
                depends |= self.check_reference(path, name, ref, body, actions, inputs)
        return depends

    def check_reference(
        self,
        path: JSONPath,
        name: str,
        ref: references.Reference,
        body: Mapping[str, Any],
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
        offset: int | None = None,
    ) -> set[str]:
        """The action `ref` makes `name` (whose definition is `body`) depend on, if any;
        reports a reference that cannot be looked up (at character `offset` of the string
        at `path`, when given)."""
        if ref.input is not None and ref.input not in inputs:
            hint = _inputs_hint(ref.input, inputs)
            self.fail(path, f"unknown input '{ref.input}'{hint}", offset=offset)
        elif ref.element:
            if body.get("for_each") is None:
                usable = "is only usable in an action with for_each"
                self.fail(path, f"'${{{{ {ref.text} }}}}' {usable}", offset=offset)
            elif ref.item:
                problem = self.element_field(name, ref, actions, inputs)[1]
                if problem is not None:
                    self.fail(path, problem, offset=offset)
        elif ref.action is not None and ref.output is not None:
            if ref.action == name:
                self.fail(path, f"action '{name}' cannot refer to its own outputs", offset=offset)
            elif ref.action not in actions:
                hint = did_you_mean(ref.action, list(actions))
                self.fail(path, f"unknown action '{ref.action}'{hint}", offset=offset)
            else:
                self.check_output(path, ref.action, ref.output, actions[ref.action], offset)
                return {ref.action}
        return set()

    def check_output(
        self, path: JSONPath, action: str, output: str, body: Any, offset: int | None = None
    ) -> None:
        uses = body.get("uses") if isinstance(body, Mapping) else None
        info = self.catalog.info(uses) if isinstance(uses, str) else None
        if isinstance(body, Mapping) and body.get("for_each") is not None:
            if output != RESULTS:
                self.fail(
                    path,
                    f"action '{action}' runs for_each: its one output is '{RESULTS}' "
                    f"(the list of each element's outputs), not '{output}'",
                )
            return
        if info is None or _declares(info.output_schema, output):
            return
        declared = sorted(_mapping(info.output_schema.get("properties")))
        hint = did_you_mean(output, declared) or (
            f" (its outputs: {', '.join(declared)})" if declared else " (it declares no outputs)"
        )
        message = f"action '{action}' ({info.name}) has no output '{output}'{hint}"
        self.fail(path, message, offset=offset)

    def check_condition(
        self, name: str, text: str, actions: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> set[str]:
        """The actions the `if:` of `name` refers to; reports a condition that does not
        parse, a reference that cannot be looked up, and operands that can never fit."""
        path = ("actions", name, "if")
        if not expressions.is_condition(text):
            return set()  # not `${{ ... }}`: the schema's pattern reported it
        try:
            expression = expressions.parse_condition(text)
        except expressions.ExpressionError as exc:
            self.fail(path, exc.message, offset=exc.offset)
            return set()
        depends: set[str] = set()
        reported = len(self.errors)
        for ref, offset in expression.references():
            if ref.element:  # an `if:` decides once for the whole action, before its elements
                where = "only usable in `with:` of an action with for_each, not in its `if:`"
                self.fail(path, f"'${{{{ {ref.text} }}}}' is {where}", offset=offset)
                continue
            body = _mapping(actions.get(name))
            depends |= self.check_reference(path, name, ref, body, actions, inputs, offset)
        if len(self.errors) == reported:  # types only of references that exist
            for offset, problem in type_problems(
                expression, lambda ref: self.declared_types(name, ref, actions, inputs)
            ):
                self.fail(path, problem, offset=offset)
        return depends

    def ref_schema(
        self,
        name: str,
        ref: references.Reference,
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> tuple[Mapping[str, Any] | None, str]:
        """The schema of what `ref` names as used in action `name` (None: unknown), and
        how an error names it."""
        if ref.input is not None:
            schema = inputs.get(ref.input)
            return (schema if isinstance(schema, Mapping) else None), f"input '{ref.input}'"
        if ref.saga is not None:
            return {"type": "string"}, f"saga.{ref.saga}"
        if ref.index:
            return {"type": "integer"}, "index"
        if ref.item is not None:
            return self.element_field(name, ref, actions, inputs)[0], ref.text
        what = f"output '{ref.output}' of '{ref.action}'"
        if ref.action is None or ref.output is None:
            return None, what
        body = _mapping(actions.get(ref.action))
        uses = body.get("uses")
        source = self.catalog.info(uses) if isinstance(uses, str) else None
        if source is None or ref.action == name:
            return None, what
        if body.get("for_each") is not None:
            return (results_schema(source.output_schema) if ref.output == RESULTS else None), what
        outputs = _mapping(source.output_schema.get("properties"))
        found = outputs.get(ref.output)
        return (found if isinstance(found, Mapping) else None), what

    def element_field(
        self,
        name: str,
        ref: references.Reference,
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> tuple[Mapping[str, Any] | None, str | None]:
        """The schema of `ref` (`item...`) in fan-out `name`, or why it cannot exist."""
        over = _mapping(actions.get(name)).get("for_each")
        try:
            source = references.whole(over) if isinstance(over, str) else None
        except references.BadReference:
            source = None
        if source is None or source.element:
            return None, None
        array = self.ref_schema(name, source, actions, inputs)[0]
        return field_schema(items_of(array), ref.item or ())

    def check_literals(self, name: str, info: ActionInfo, with_: Mapping[str, Any]) -> None:
        """Check `with_` against the action's input schema, skipping values with references."""
        schema = info.input_schema
        if certainly_usable(schema) and certainly_valid(
            schema, dict(with_), search=re2_search, holds_reference=_holds_reference
        ):
            return  # without jsonschema: it would have kept no error
        validator = self.validator(info)
        if validator is None:
            self.fail(
                ("actions", name, "uses"),
                f"'{info.name}' has an invalid input schema (a bug in its plugin)",
            )
            return
        kept: list[ValidationError] = [
            error
            for error in validator.iter_errors(dict(with_))
            if error.validator in _KEY_CHECKS or not _holds_reference(error.instance)
        ]
        self.errors.extend(describe_all(kept, ("actions", name, "with"), self.where))

    def check_reference_types(
        self,
        name: str,
        info: ActionInfo,
        with_: Mapping[str, Any],
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> None:
        """A whole-value reference whose declared type can never fit the input it feeds."""
        wanted_by_key = _mapping(info.input_schema.get("properties"))
        for key, value in with_.items():
            wanted = _types_of(wanted_by_key.get(key))
            try:
                ref = references.whole(value) if isinstance(value, str) and wanted else None
            except references.BadReference:
                continue  # reported by check_references
            if ref is None or wanted is None:
                continue
            if ref.action == name:
                continue  # a reference to itself, reported by check_references
            schema, what = self.ref_schema(name, ref, actions, inputs)
            given = _types_of(schema)
            if given and not _fits(given, wanted):
                self.fail(
                    ("actions", name, "with", key),
                    f"expected {type_words(sorted(wanted))}, but {what} is "
                    f"{type_words(sorted(given))}",
                )

    def declared_types(
        self,
        name: str,
        ref: references.Reference,
        actions: Mapping[str, Any],
        inputs: Mapping[str, Any],
    ) -> frozenset[str] | None:
        """The JSON types `ref`'s value is declared to have; None when nothing says."""
        if ref.action == name:
            return None
        types = _types_of(self.ref_schema(name, ref, actions, inputs)[0])
        return frozenset(types) if types is not None else None

    def check_outputs(
        self, outputs: Mapping[str, Any], actions: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check the references of `outputs:`; their JSON Schema, typed as far as known."""
        self.check_references("", outputs, actions, inputs, base=("outputs",))
        properties: dict[str, Any] = {}
        for key, value in outputs.items():
            types: set[str] | None
            try:
                ref = references.whole(value) if isinstance(value, str) else None
            except references.BadReference:
                ref = None  # reported by check_references
            if ref is not None:
                types = _types_of(self.ref_schema("", ref, actions, inputs)[0])
            else:
                types = _literal_types(value)
            properties[key] = {"type": sorted(types)} if types else {}
        return {"type": "object", "properties": properties}

    def validator(self, info: ActionInfo) -> Validator | None:
        from .json_schema import schema_problems, validator

        if info.name not in self.validators:
            usable = not any(schema_problems(info.input_schema))
            self.validators[info.name] = validator(info.input_schema) if usable else None
        return self.validators[info.name]

    def duration(self, value: Any, path: JSONPath) -> float | None:
        """Seconds, or None when absent or malformed (the schema reported that)."""
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except (TypeError, ValueError):
            return None
        if seconds <= 0 and path[-1] == "timeout":
            self.fail(path, "a timeout must be longer than 0 seconds")
        return seconds

    def retry(
        self, here: JSONPath, default: Mapping[str, Any], own: Mapping[str, Any]
    ) -> RetryPolicy:
        """The action's retry policy: its own keys over the saga's defaults over ours."""
        fields: dict[str, Any] = {}
        for source, path in ((default, ("defaults", "retry")), (own, (*here, "retry"))):
            attempts = source.get("attempts")
            if _number(attempts) and isinstance(attempts, int) and attempts >= 1:
                fields["attempts"] = attempts
            for key in ("backoff", "max_backoff"):
                seconds = self.duration(source.get(key), (*path, key))
                if seconds is not None:
                    fields[key] = seconds
            jitter = source.get("jitter")
            if (
                isinstance(jitter, int | float)
                and not isinstance(jitter, bool)
                and 0 <= jitter <= 1
            ):
                fields["jitter"] = float(jitter)
        policy = RetryPolicy(**fields)
        if policy.max_backoff < policy.backoff:
            where = (*here, "retry") if own else ("defaults", "retry")
            self.fail(
                where,
                f"max_backoff ({policy.max_backoff:g}s) is shorter than backoff "
                f"({policy.backoff:g}s)",
            )
        return policy

    def check_cycles(self, specs: Mapping[str, ActionSpec]) -> None:
        deps = {name: [d for d in spec.depends_on if d in specs] for name, spec in specs.items()}
        if lexicographic_order(deps) is not None:
            return  # the common case, without importing networkx
        import networkx as nx  # only to name each cycle

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(specs)
        for spec in specs.values():
            graph.add_edges_from((dep, spec.name) for dep in spec.depends_on if dep in specs)
        position = {name: _position(spec.location) for name, spec in specs.items()}
        for component in nx.strongly_connected_components(graph):
            if len(component) < 2:
                continue
            cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component))]
            # Start at the action written first; arrows run as edges do: `a -> b`, b waits for a.
            start = min(range(len(cycle)), key=lambda i: position[cycle[i]])
            ordered = cycle[start:] + cycle[:start]
            self.fail(
                ("actions", ordered[0]),
                f"dependency cycle: {' -> '.join([*ordered, ordered[0]])} "
                "(each action waits for the one before it)",
                key=True,
            )


def _inputs_hint(name: str, inputs: Mapping[str, Any]) -> str:
    if not inputs:
        return " (the saga declares no inputs)"
    return did_you_mean(name, list(inputs)) or f" (declared: {', '.join(sorted(inputs))})"


def _position(location: Location | None) -> tuple[int, int]:
    return (location.line, location.column) if location else (0, 0)


def _literal_types(value: Any) -> set[str] | None:
    """The JSON type of an `outputs:` value that is not one whole reference."""
    if isinstance(value, str):
        return {"string"}  # with references embedded, or none: a string either way
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer"}
    if isinstance(value, float):
        return {"number"}
    if value is None:
        return {"null"}
    return {"object"} if isinstance(value, Mapping) else {"array"}


def _fits(given: Set[str], wanted: Set[str]) -> bool:
    """Whether some value of a `given` type can be of a `wanted` type (integers are numbers)."""
    return any(t in wanted or (t == "integer" and "number" in wanted) for t in given)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[JSONPath, str]]:
    """Every string inside a `with:` value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _holds_reference(value: Any) -> bool:
    """Whether a value holds a `${{` anywhere (malformed ones are reported on their own)."""
    return any("${{" in text for _, text in _strings(value, ()))
