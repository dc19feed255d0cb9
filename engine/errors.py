"""The exceptions sagactl raises and the ones actions raise to steer the engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file: 1-based line and column (column 0 when unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        if self.column <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"


class SagaError(Exception):
    """Root of every error sagactl raises; `code` is stable for machines."""

    code = "saga_error"


class InputError(SagaError):
    """Bad input (a definition, an argument, a hostile tar, a broken app.toml).

    Raised inside an action it is never retried: the saga compensates and the CLI exits 2.
    """

    code = "input_error"

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class DefinitionError(InputError):
    """A saga definition that cannot be loaded, validated or compiled."""

    code = "definition_error"


class DefinitionErrors(DefinitionError):
    """Several definition errors found in one pass, reported together, in file order."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = sorted(
            errors,
            key=lambda e: (
                e.location.file if e.location else "",
                e.location.line if e.location else 0,
                e.location.column if e.location else 0,
            ),
        )
        first = self.errors[0]
        super().__init__(first.message, first.location)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class FatalError(SagaError):
    """An action failure that retrying cannot fix; the saga compensates at once."""

    code = "fatal"


class RetryableError(SagaError):
    """An action failure worth retrying even where the retry policy lists error types."""

    code = "retryable"


class PluginError(SagaError):
    """A plugin that failed to load, or two distributions claiming one name."""

    code = "plugin_error"

    def __init__(
        self,
        message: str,
        *,
        group: str,
        name: str,
        distribution: str | None,
        distributions: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.group = group
        self.name = name
        self.distribution = distribution
        self.distributions = distributions or ((distribution,) if distribution else ())
        """Every distribution involved: two or more when they clash over one name."""


class RunNotFound(InputError):
    """No run with this id is in the store."""

    code = "run_not_found"


class Cancelled(BaseException):
    """A run was cancelled by an operator; a BaseException so `except Exception` cannot eat it."""
