"""What each stack installs, in which order, and the web command its users expect.

An install plan reads only the app's manifests (bounded, without following symlinks); the
commands it gives are ours, with upload values only as separate exec-form arguments.
Layer order for cache reuse: the manifests, then the install, then the rest of the source.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sagactl.engine import InputError

from . import safefs

MAX_MANIFEST = 1 << 20
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
_TLS_ENV = (
    f"SSL_CERT_FILE={CA_PATH}",
    f"PIP_CERT={CA_PATH}",
    f"NODE_EXTRA_CA_CERTS={CA_PATH}",
    f"CARGO_HTTP_CAINFO={CA_PATH}",
    f"GIT_SSL_CAINFO={CA_PATH}",
)
"""Every tool of a RUN step trusts the mounted CA bundle (buildah -v ...:ro)."""
_BIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
_PY_MODULES = ("app", "main", "wsgi", "asgi", "server")
_PY_APP_VAR = re.compile(
    r"^(?:(?:async\s+)?def\s+)?(?P<name>app|application)\s*(?:\(|=|:[^=\n]*=)", re.MULTILINE
)
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class MissingCommand(InputError):
    """The app declares no web command and its stack has no obvious one."""


@dataclass(frozen=True, slots=True)
class InstallPlan:
    manifests: tuple[str, ...] = ()
    """Files copied before the install step, so a source-only change reuses its layer."""
    install: tuple[tuple[str, ...], ...] = ()
    """Exec-form steps run on the manifests alone (dependency installs)."""
    build: tuple[tuple[str, ...], ...] = ()
    """Exec-form steps run on the whole source (compiles)."""
    ignore: tuple[str, ...] = (".git",)
    """Paths left out of `COPY .` (what the install makes must not be overwritten)."""
    web: str | None = None
    """The web command when the app declares none."""
    env: dict[str, str] = field(default_factory=dict)


def with_tls(*argv: str) -> tuple[str, ...]:
    """`argv` run with every tool's CA variable pointing at the mounted bundle."""
    return ("env", *_TLS_ENV, *argv)


def _present(source: Path, *names: str) -> list[str]:
    """Those of `names` that are regular files in the app (symlinks resolving inside)."""
    found = []
    for name in names:
        try:
            if safefs.inside(source, source / name).is_file():
                found.append(name)
        except OSError:
            continue
    return found


def _read(source: Path, name: str) -> str:
    """A manifest's text, bounded, read at its resolved place inside the app."""
    try:
        resolved = safefs.inside(source, source / name).relative_to(source.resolve())
        return safefs.read_beneath(source.resolve(), resolved.as_posix(), MAX_MANIFEST).decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot be read ({exc})") from None


def _toml(source: Path, name: str) -> dict[str, Any]:
    try:
        return tomllib.loads(_read(source, name))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{name}: {exc}") from None


def plan(stack: str, source: Path) -> InstallPlan:
    """The install plan of an app of `stack` whose source is at `source`."""
    make = _PLANS.get(stack)
    made = make(source) if make is not None else InstallPlan()
    if any((source / name).is_symlink() for name in made.manifests):
        # A linked manifest needs its target: install after the whole source is copied.
        return replace(made, manifests=(), install=(), build=(*made.install, *made.build))
    return made


def _python(source: Path) -> InstallPlan:
    pip = ("pip", "install", "--no-cache-dir", "--disable-pip-version-check")
    found = _present(source, "requirements.txt", "pyproject.toml", "setup.py")
    names: list[str] = []
    if "requirements.txt" in found:
        install: tuple[tuple[str, ...], ...] = (with_tls(*pip, "-r", "requirements.txt"),)
        manifests: tuple[str, ...] = ("requirements.txt",)
        for line in _read(source, "requirements.txt").splitlines():
            match = _REQ_NAME.match(line)
            if match and not line.lstrip().startswith(("#", "-")):
                names.append(match[1])
        build: tuple[tuple[str, ...], ...] = ()
    elif "pyproject.toml" in found:
        project = _toml(source, "pyproject.toml").get("project") or {}
        deps = project.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise InputError("pyproject.toml: project.dependencies must be a list of strings")
        for dep in deps:
            if dep.lstrip().startswith("-"):
                raise InputError(f"pyproject.toml: dependency {dep!r:.80} is not a requirement")
            match = _REQ_NAME.match(dep)
            if match:
                names.append(match[1])
        manifests = ("pyproject.toml",)
        install = (with_tls(*pip, *deps),) if deps else ()
        build = ()
    elif "setup.py" in found:
        manifests, install = (), ()
        build = (with_tls(*pip, "."),)
    else:
        manifests, install, build = (), (), ()
    return InstallPlan(
        manifests, install, build, (".git", ".venv", "__pycache__"), _python_web(source, names)
    )


def _python_web(source: Path, requirements: list[str]) -> str | None:
    declared = {name.lower().replace("_", "-") for name in requirements}
    server = next((s for s in ("gunicorn", "uvicorn") if s in declared), None)
    if server is None:
        return None
    for module in _PY_MODULES:
        if not _present(source, f"{module}.py"):
            continue
        found = _PY_APP_VAR.search(_read(source, f"{module}.py"))
        if found:
            target = f"{module}:{found['name']}"
            if server == "gunicorn":
                return f"gunicorn --bind 0.0.0.0:$PORT {target}"
            return f"uvicorn {target} --host 0.0.0.0 --port $PORT"
    return None


def _node(source: Path) -> InstallPlan:
    lock = _present(source, "package-lock.json", "npm-shrinkwrap.json")
    npm = ("npm", "ci") if lock else ("npm", "install")
    flags = ("--omit=dev", "--no-audit", "--no-fund")
    web = None
    if _present(source, "package.json"):
        try:
            package = json.loads(_read(source, "package.json"))
        except ValueError as exc:
            raise InputError(f"package.json: {exc}") from None
        scripts = package.get("scripts") if isinstance(package, dict) else None
        if isinstance(scripts, dict) and isinstance(scripts.get("start"), str):
            web = "npm start"
    if web is None and _present(source, "server.js"):
        web = "npm start"  # npm's own default start script is `node server.js`
    return InstallPlan(
        ("package.json", *lock), (with_tls(*npm, *flags),), (), (".git", "node_modules"), web
    )


def _bun(source: Path) -> InstallPlan:
    lock = _present(source, "bun.lockb", "bun.lock")
    return InstallPlan(
        ("package.json", *lock),
        (with_tls("bun", "install", "--production"),),
        (),
        (".git", "node_modules"),
        "bun run start",
    )


def _go(source: Path) -> InstallPlan:
    sums = _present(source, "go.sum")
    requires = "require" in _read(source, "go.mod") if _present(source, "go.mod") else False
    install = (with_tls("go", "mod", "download"),) if requires else ()
    build = (("go", "build", "-buildvcs=false", "-o", "/usr/local/bin/app", "."),)
    return InstallPlan(("go.mod", *sums), install, build, (".git",), "app")


def _ruby(source: Path) -> InstallPlan:
    lock = _present(source, "Gemfile.lock")
    web = "bundle exec rackup --host 0.0.0.0 -p $PORT" if _present(source, "config.ru") else None
    return InstallPlan(
        ("Gemfile", *lock),
        (with_tls("bundle", "install"),),
        (),
        (".git", "vendor/bundle"),
        web,
        {"BUNDLE_WITHOUT": "development:test"},
    )


def _rust(source: Path) -> InstallPlan:
    cargo = _toml(source, "Cargo.toml") if _present(source, "Cargo.toml") else {}
    bins = cargo.get("bin")
    name = (
        bins[0].get("name")
        if isinstance(bins, list) and bins and isinstance(bins[0], dict)
        else None
    )
    name = name or (cargo.get("package") or {}).get("name")
    if not isinstance(name, str) or not _BIN_NAME.fullmatch(name):
        raise InputError(
            f"Cargo.toml: no usable binary name (package.name or [[bin]] name): {name!r}"
        )
    locked = ("--locked",) if _present(source, "Cargo.lock") else ()
    build = (with_tls("cargo", "build", "--release", *locked),)
    return InstallPlan((), (), build, (".git", "target"), f"./target/release/{name}")


def _static(source: Path) -> InstallPlan:
    # `.`: the working directory, /app in a container and the unpacked source in the local
    # runtime's fallback, so one command serves both.
    return InstallPlan(web="busybox httpd -f -p $PORT -h .")


_PLANS = {
    "python": _python,
    "node": _node,
    "bun": _bun,
    "go": _go,
    "ruby": _ruby,
    "rust": _rust,
    "static": _static,
}

_HOW = {
    "python": "depend on gunicorn or uvicorn with an app.py/main.py/wsgi.py defining `app`",
    "node": 'give package.json a "start" script',
    "ruby": "add a config.ru",
}


def default_web(stack: str, source: Path) -> str:
    """The web command of an app that declares none; MissingCommand when there is no
    obvious one (never a file server over the source folder)."""
    command = plan(stack, source).web
    if command is None:
        how = _HOW.get(stack)
        hint = f", or {how}" if how else ""
        raise MissingCommand(
            f"the {stack} app declares no web command: add a Procfile with `web: COMMAND`{hint}"
        )
    return command
