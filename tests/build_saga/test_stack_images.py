"""Issue 15, items 1-2: real images on the bases made here, with their dependencies installed.

Each stack's base is made once per session (conftest `stack_store`, all at once; the ruby
and rust bases are the slowest, several minutes each from deb.debian.org); every build
installs from the app's manifest inside the sandbox, with the host's CA bundle, from the
real registries, and the test runs the image under runc to see the dependency import.
Each example app is then built with the defaults through the saga and served from its
container: its own answer says where it runs. RubyGems and crates.io are not reachable
from this machine: a gem or crate dependency fails its build with the tool's reason.
"""
# ruff: noqa: ASYNC221  (tests run real buildah and read real files)

from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.plugins.builders import bases
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec, BuiltImage, ImageBuildFailed
from sagactl.plugins.builders.buildah import BuildahBuilder
from sagactl.plugins.builders.stacks import MissingCommand, default_web
from sagactl.plugins.runtimes.runc import runc_usable

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.buildah,
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # the first test of a session makes the bases
]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def made_bases(stack_store: dict[str, Any]) -> dict[str, str]:
    """The bases these tests build on, made at once (their downloads overlap), once."""
    builder = BuildahBuilder(BuilderOptions(**stack_store))
    made: dict[str, str] = {}

    async def make(stack: str) -> None:
        made[stack] = await bases.ensure(stack, builder.options, builder.command, lambda _: None)

    async def make_all() -> None:
        await builder.prepare()
        async with anyio.create_task_group() as group:
            for stack in ("python", "node", "go", "static", "ruby", "rust"):
                group.start_soon(make, stack)

    anyio.run(make_all)
    return made


@pytest.fixture
def builder(stack_store: dict[str, Any], made_bases: dict[str, str]) -> BuildahBuilder:
    return BuildahBuilder(BuilderOptions(**stack_store))


def _app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


async def _build(
    builder: BuildahBuilder, context: Path, stack: str, version: str, lines: list[str]
) -> BuiltImage:
    spec = BuildSpec(
        app=version.rsplit("-v", 1)[0],
        version=version,
        context_dir=context,
        stack=stack,
        command=default_web(stack, context),
        port=8080,
        labels={"org.opencontainers.image.version": version},
    )
    return await builder.build(spec, lines.append)


def _run_in(builder: BuildahBuilder, image: str, *command: str) -> str:
    """Runs `command` in a container of `image` under runc, without network."""
    made = subprocess.run(
        [*builder.command, "from", "--quiet", image], capture_output=True, text=True, check=True
    )
    container = made.stdout.strip()
    try:
        done = subprocess.run(
            [
                *builder.command,
                "run",
                "--isolation",
                "oci",
                "--runtime",
                "runc",
                "--network",
                "none",
                container,
                "--",
                *command,
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
    finally:
        subprocess.run([*builder.command, "rm", container], capture_output=True, check=False)


def _config(builder: BuildahBuilder, image: str) -> dict[str, Any]:
    shown = subprocess.run(
        [*builder.command, "inspect", "--type", "image", image],
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(shown.stdout)["OCIv1"]["config"]
    return config


GUNICORN = "gunicorn==23.0.0\n"
PYTHON_APP = {
    "requirements.txt": GUNICORN,
    "app.py": "def app(environ, start_response):\n"
    "    start_response('200 OK', [])\n    return [b'ok']\n",
}


class TestStackImages:
    async def test_python_installs_from_pypi_and_rebuilds_from_cache(
        self, builder: BuildahBuilder, tmp_path: Path
    ) -> None:
        """requirements.txt is installed with pip from PyPI (the CA bundle mounted); the
        default command is gunicorn on app:app; a source-only rebuild builds on the
        dependency image (no install step at all) and makes no new base; a changed
        requirements.txt installs again."""
        await builder.prepare()
        # A comment of its own: a kept store (SAGACTL_TEST_BASE_STORE) may hold the
        # dependency image of an earlier session's identical requirements.
        token = f"# {secrets.token_hex(8)}\n"
        context = _app(tmp_path / "py", {**PYTHON_APP, "requirements.txt": GUNICORN + token})
        lines: list[str] = []
        image = await _build(builder, context, "python", "pyapp-v1", lines)
        assert any("pip" in line for line in lines if line.startswith("STEP")), lines
        version = _run_in(
            builder, image.ref, "python3", "-c", "import gunicorn; print(gunicorn.__version__)"
        )
        assert version.strip() == "23.0.0"
        config = _config(builder, image.ref)
        assert config["Cmd"] == ["/bin/sh", "-c", "gunicorn --bind 0.0.0.0:$PORT app:app"]
        assert config["WorkingDir"] == "/app"
        assert config["Labels"]["org.opencontainers.image.version"] == "pyapp-v1"

        base = bases.image_name("python", builder.options)
        base_id = _image_id(builder, base)
        (context / "app.py").write_text(PYTHON_APP["app.py"] + "# changed\n")
        again: list[str] = []
        await _build(builder, context, "python", "pyapp-v2", again)
        assert any(line.startswith("dependencies unchanged: building on") for line in again)
        assert not any("pip" in line for line in again if line.startswith("STEP")), again
        assert not any("making" in line for line in again)
        # A changed manifest makes a new dependency image; the install runs again.
        (context / "requirements.txt").write_text(GUNICORN + token + "# new\n")
        third: list[str] = []
        await _build(builder, context, "python", "pyapp-v3", third)
        assert any("pip" in line for line in third if line.startswith("STEP")), third
        assert _image_id(builder, base) == base_id

    async def test_node_installs_from_npm(self, builder: BuildahBuilder, tmp_path: Path) -> None:
        """package.json's dependency is installed with npm from the registry; npm start;
        with a lockfile, `npm ci` installs exactly what it pins."""
        package = {
            "name": "nodeapp",
            "version": "1.0.0",
            "description": secrets.token_hex(8),  # no dependency image from a kept store
            "scripts": {"start": "node server.js"},
            "dependencies": {"ms": "2.1.3"},
        }
        context = _app(
            tmp_path / "node",
            {"package.json": json.dumps(package), "server.js": "require('ms');\n"},
        )
        image = await _build(builder, context, "node", "nodeapp-v1", [])
        said = _run_in(builder, image.ref, "node", "-e", "console.log(require('ms')(60000))")
        assert said.strip() == "1m"
        assert _config(builder, image.ref)["Cmd"] == ["/bin/sh", "-c", "npm start"]

        (context / "package-lock.json").write_text(json.dumps(_lock(package)))
        lines: list[str] = []
        image = await _build(builder, context, "node", "nodeapp-v2", lines)
        assert any('"npm", "ci"' in line for line in lines if line.startswith("STEP"))
        said = _run_in(builder, image.ref, "node", "-e", "console.log(require('ms')(2000))")
        assert said.strip() == "2s"

    async def test_go_compiles(self, builder: BuildahBuilder, tmp_path: Path) -> None:
        """go.mod + main.go are compiled to /usr/local/bin/app, the default command."""
        context = _app(
            tmp_path / "go",
            {
                "go.mod": "module example.com/hello\n\ngo 1.19\n",
                "main.go": 'package main\n\nimport "fmt"\n\n'
                'func main() { fmt.Println("hi from go") }\n',
            },
        )
        image = await _build(builder, context, "go", "goapp-v1", [])
        assert _run_in(builder, image.ref, "app").strip() == "hi from go"
        assert _config(builder, image.ref)["Cmd"] == ["/bin/sh", "-c", "app"]

    async def test_static_site(self, builder: BuildahBuilder) -> None:
        """A static site is served by busybox httpd from /app."""
        image = await _build(builder, EXAMPLES / "static-site", "static", "site-v1", [])
        assert "<" in _run_in(builder, image.ref, "cat", "/app/index.html")
        assert _run_in(builder, image.ref, "busybox", "httpd", "--help") is not None
        cmd = _config(builder, image.ref)["Cmd"]
        assert cmd == ["/bin/sh", "-c", "busybox httpd -f -p $PORT -h ."]

    async def test_dockerfile_app_on_defaults(self, builder: BuildahBuilder) -> None:
        """A Dockerfile app builds with the default sandbox (its RUN step ran)."""
        context = EXAMPLES / "dockerfile-app"
        subprocess.run(
            [
                *builder.command,
                "tag",
                bases.image_name("static", builder.options),
                "localhost/sagactl/busybox:latest",
            ],
            check=True,
            capture_output=True,
        )
        spec = BuildSpec(
            app="dockerfile-app",
            version="dockerfile-app-v1",
            context_dir=context,
            stack="dockerfile",
            containerfile=context / "Containerfile",
        )
        image = await builder.build(spec, lambda _: None)
        assert _run_in(builder, image.ref, "cat", "/app/BUILD_INFO").startswith("built at ")

    async def test_failing_install_fails_with_the_tools_lines(
        self, builder: BuildahBuilder, tmp_path: Path
    ) -> None:
        """A dependency that does not exist fails the build with pip's own words."""
        context = _app(
            tmp_path / "bad",
            {**PYTHON_APP, "requirements.txt": "gunicorn==23.0.0\nsagactl-no-such-package-x==1\n"},
        )
        with pytest.raises(ImageBuildFailed) as info:
            await _build(builder, context, "python", "badapp-v1", [])
        assert "No matching distribution found for sagactl-no-such-package-x" in str(info.value)

    async def test_bun_has_no_base_here(self, builder: BuildahBuilder, tmp_path: Path) -> None:
        """bun: a clear error saying how to provide a base."""
        context = _app(tmp_path / "bun", {"package.json": "{}", "bun.lockb": ""})
        with pytest.raises(ImageBuildFailed, match="SAGACTL_BASE_IMAGE_BUN"):
            await _build(builder, context, "bun", "bunapp-v1", [])


def _lock(package: dict[str, Any]) -> dict[str, Any]:
    """package-lock.json (v3) pinning ms 2.1.3 by its registry integrity."""
    return {
        "name": package["name"],
        "version": package["version"],
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {
                "name": package["name"],
                "version": package["version"],
                "dependencies": package["dependencies"],
            },
            "node_modules/ms": {
                "version": "2.1.3",
                "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
                "integrity": "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/"
                "XXP6tz7R9xAOtHnSO/tXtF3WRTlA==",
            },
        },
    }


def _image_id(builder: BuildahBuilder, name: str) -> str:
    shown = subprocess.run(
        [*builder.command, "inspect", "--type", "image", "--format", "{{.FromImageID}}", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


class TestDefaultWeb:
    def test_python_without_a_server_asks_for_a_procfile(self, tmp_path: Path) -> None:
        """No gunicorn/uvicorn: a clear error, never a file server over the source."""
        context = _app(tmp_path / "p", {"requirements.txt": "flask\n", "app.py": "app = 1\n"})
        with pytest.raises(MissingCommand, match="Procfile"):
            default_web("python", context)

    def test_uvicorn_on_main(self, tmp_path: Path) -> None:
        context = _app(
            tmp_path / "p",
            {
                "pyproject.toml": '[project]\nname = "x"\ndependencies = ["uvicorn>=0.30"]\n',
                "main.py": "async def app(scope, receive, send):\n    pass\n",
            },
        )
        assert default_web("python", context) == "uvicorn main:app --host 0.0.0.0 --port $PORT"

    def test_rust_binary_name_from_cargo(self, tmp_path: Path) -> None:
        context = _app(
            tmp_path / "r",
            {"Cargo.toml": '[package]\nname = "shop"\n\n[[bin]]\nname = "shop-web"\n'},
        )
        assert default_web("rust", context) == "./target/release/shop-web"
        bad = _app(tmp_path / "b", {"Cargo.toml": '[package]\nname = "x; rm -rf /"\n'})
        with pytest.raises(Exception, match="binary name"):
            default_web("rust", bad)

    def test_node_without_start(self, tmp_path: Path) -> None:
        context = _app(tmp_path / "n", {"package.json": '{"name": "x"}'})
        with pytest.raises(MissingCommand, match="start"):
            default_web("node", context)


class TestImagesCommand:
    def _run(self, store: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "SAGACTL_BUILDAH_DRIVER": store["storage_driver"],
            "SAGACTL_BUILDAH_ROOT": str(store["storage_root"]),
            "SAGACTL_BUILDAH_RUNROOT": str(store["run_root"]),
            "SAGACTL_BUILD_DIR": str(store["work_dir"]),
        }
        sagactl = Path(sys.executable).parent / "sagactl"
        return subprocess.run(
            [str(sagactl), "images", *args], capture_output=True, text=True, env=env
        )

    def test_prepare_then_list(self, stack_store: dict[str, Any]) -> None:
        """`images prepare static` makes (or finds) the base; `images list --json` shows
        its recipe hash and the Debian package it came from."""
        prepared = self._run(stack_store, "prepare", "static")
        assert prepared.returncode == 0, prepared.stderr
        assert prepared.stdout.startswith("static\tlocalhost/sagactl/base-static:")
        listed = self._run(stack_store, "list", "--json")
        static = next(row for row in json.loads(listed.stdout) if row["stack"] == "static")
        options = BuilderOptions(work_dir=stack_store["work_dir"])
        assert static["made"] is True
        assert static["recipe"] == bases.recipe_hash("static", options)
        assert any(p.startswith("busybox-static=") for p in static["packages"])

    def test_unknown_stack_is_refused(self, stack_store: dict[str, Any]) -> None:
        done = self._run(stack_store, "prepare", "cobol")
        assert done.returncode == 2
        assert done.stderr.startswith("error: no base is made here for cobol")
        assert "Traceback" not in done.stderr


class TestBuildCommand:
    """`sagactl build` on buildah with the defaults: the saga end to end, its exit codes."""

    def _env(self, store: dict[str, Any], tmp_path: Path) -> dict[str, str]:
        return {
            **os.environ,
            "SAGACTL_BUILDER": "buildah",
            "SAGACTL_BUILDAH_DRIVER": store["storage_driver"],
            "SAGACTL_BUILDAH_ROOT": str(store["storage_root"]),
            "SAGACTL_BUILDAH_RUNROOT": str(store["run_root"]),
            "SAGACTL_BUILD_DIR": str(tmp_path / "state"),
            "SAGACTL_DB": f"sqlite://{tmp_path / 'sagactl.db'}",
            "SAGACTL_CLUSTER_HOST": "localhost",
        }

    def _sagactl(
        self, env: dict[str, str], *args: str, upload: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        sagactl = Path(sys.executable).parent / "sagactl"
        tar = None
        if upload is not None:
            tar = subprocess.run(["tar", "c", "-C", str(upload), "."], capture_output=True).stdout
        return subprocess.run(
            [str(sagactl), *args],
            input=tar.decode("latin-1") if tar is not None else None,
            capture_output=True,
            text=True,
            encoding="latin-1",
            env=env,
        )

    def test_python_app_builds_and_shows_no_paths(
        self, stack_store: dict[str, Any], made_bases: dict[str, str], tmp_path: Path
    ) -> None:
        """A python app with gunicorn and no Procfile builds on the made base; app show
        gives the image and the gunicorn web command, and no host path."""
        env = self._env(stack_store, tmp_path)
        context = _app(tmp_path / "py", PYTHON_APP)
        built = self._sagactl(env, "build", "pyweb", "-", "--json", upload=context)
        assert built.returncode == 0, built.stderr[-2000:]
        result = json.loads(built.stdout)
        assert result["image"] == "localhost/sagactl/pyweb:pyweb-v1"
        shown = self._sagactl(env, "app", "show", "pyweb", "--json")
        version = json.loads(shown.stdout)["versions"][0]
        assert version["services"]["web"]["command"].startswith("gunicorn --bind")
        assert "source_dir" not in version
        # No host path but the sandboxes' own log files, which app show names on purpose.
        logs = [
            sandbox["log"]
            for v in json.loads(shown.stdout)["versions"]
            for sandbox in v["sandboxes"]
        ]
        assert str(tmp_path) not in functools.reduce(
            lambda t, log: t.replace(log, ""), logs, shown.stdout
        )
        paths = self._sagactl(env, "app", "show", "pyweb", "--json", "--paths")
        assert json.loads(paths.stdout)["versions"][0]["source_dir"].startswith(str(tmp_path))

    @pytest.mark.parametrize(
        ("files", "said"),
        [
            ({"requirements.txt": "flask\n", "app.py": "x = 1\n"}, "Procfile"),
            (
                {**PYTHON_APP, "app.toml": '[build]\nbase_image = "oci:/tmp/layout:1"\n'},
                "not a registry reference",
            ),
            (
                {"Containerfile": "FROM busybox\nADD http://127.0.0.1:5432/ /x\n"},
                "Containerfile:2",
            ),
        ],
    )
    def test_refused_apps_exit_2(
        self,
        stack_store: dict[str, Any],
        made_bases: dict[str, str],
        tmp_path: Path,
        files: dict[str, str],
        said: str,
    ) -> None:
        """No web command, a host path as base, a URL in ADD: one error line, exit 2."""
        env = self._env(stack_store, tmp_path)
        built = self._sagactl(env, "build", "bad", "-", upload=_app(tmp_path / "bad", files))
        assert built.returncode == 2, built.stderr[-2000:]
        assert said in built.stderr and "Traceback" not in built.stderr


def _saga_deps(store: dict[str, Any], state: Path) -> Any:
    """Dependencies for the build saga on the defaults: buildah on the session's store (and
    its bases), the runc runtime."""
    from sagactl.actions.build_from_tar.cluster import ClusterSettings
    from sagactl.actions.build_from_tar.settings import BuildSettings
    from sagactl.engine import Dependencies

    deps = Dependencies()
    deps.provide(
        BuildSettings,
        BuildSettings(
            state_dir=state,
            cluster=ClusterSettings(host="localhost"),
            builder="buildah",
            buildah_driver=store["storage_driver"],
            buildah_root=store["storage_root"],
            buildah_runroot=store["run_root"],
            runtime="runc",
            stop_grace=2.0,
            health_timeout=30.0,
        ),
    )
    return deps


def _with_env(source: Path, target: Path, env: dict[str, str]) -> Path:
    """A copy of the example at `source` whose app.toml `[env]` also holds `env`."""
    import shutil

    shutil.copytree(source, target, symlinks=True)
    toml = target / "app.toml"
    lines = "".join(f'{key} = "{value}"\n' for key, value in env.items())
    text = toml.read_text() if toml.exists() else ""
    if "[env]\n" in text:
        text = text.replace("[env]\n", f"[env]\n{lines}", 1)
    else:
        text = f"[env]\n{lines}\n{text}"
    toml.write_text(text)
    return target


async def _build_example(deps: Any, db: str, app: str, source: Path) -> tuple[Any, dict[str, Any]]:
    """Builds `source` as `app` through the saga; (the result, `app show`)."""
    import io

    from sagactl.actions.build_from_tar import records
    from sagactl.actions.build_from_tar.entry import build_from_tar_async
    from sagactl.engine import open_store
    from tars import tar_of_dir

    result = await build_from_tar_async(app, io.BytesIO(tar_of_dir(source)), deps=deps, db=db)
    async with open_store(db) as store, store.transaction() as tx:
        shown = await records.show_app(tx, app)
    return result, shown


def _get_json(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


@pytest.mark.skipif(runc_usable() is not None, reason=f"runc unusable: {runc_usable()}")
class TestServedStacks:
    """Each example built with the defaults (no base, builder or runtime named), served from
    its container; its /facts answer (the app's own code) says where it runs."""

    @pytest.mark.parametrize(
        ("example", "dependency"),
        [
            ("python-web", ("humanize", "4.")),
            ("node-web", ("ms", "2.1.")),
            ("go-web", None),
            ("ruby-web", ("bundler", "2.")),
            ("rust-web", None),
        ],
    )
    async def test_example_serves_from_its_container(
        self,
        stack_store: dict[str, Any],
        made_bases: dict[str, str],
        tmp_path: Path,
        example: str,
        dependency: tuple[str, str] | None,
    ) -> None:
        """Working directory /app; its own PID namespace (a handful of processes); not root
        (uid 65534); a host file is not visible; its dependency is importable."""
        secret = tmp_path / "host-secret"
        secret.write_text("the host's")
        source = _with_env(EXAMPLES / example, tmp_path / example, {"PROBE": str(secret)})
        deps = _saga_deps(stack_store, tmp_path / "state")
        db = f"sqlite://{tmp_path / 'sagactl.db'}"
        result, shown = await _build_example(deps, db, example, source)
        assert shown["active_version"] == result.version
        version = next(v for v in shown["versions"] if v["version"] == result.version)
        (sandbox,) = [s for s in version["sandboxes"] if s["state"] == "running"]
        assert sandbox["runtime"] == "runc"
        facts = await anyio.to_thread.run_sync(_get_json, sandbox["url"] + "/facts")
        assert facts["cwd"] == "/app", facts
        assert facts["processes"] < 10, facts
        assert facts["uid"] == 65534, facts
        assert facts["probe"] is False, facts
        assert facts["version"] == result.version
        if dependency is not None:
            name, prefix = dependency
            assert str(facts[name]).startswith(prefix), facts

    @pytest.mark.parametrize(
        ("example", "manifest", "text", "said"),
        [
            (
                "ruby-web",
                "Gemfile",
                'source "https://rubygems.org"\ngem "rack", "3.0.8"\n',
                "Could not reach host index.rubygems.org",
            ),
            (
                "rust-web",
                "Cargo.toml",
                '[package]\nname = "rust-web"\nversion = "0.1.0"\nedition = "2021"\n\n'
                '[[bin]]\nname = "hello-web"\npath = "src/main.rs"\n\n'
                '[dependencies]\nitoa = "1"\n',
                "failed to fetch `https://github.com/rust-lang/crates.io-index`",
            ),
        ],
    )
    async def test_a_registry_dependency_fails_the_build_clearly(
        self,
        stack_store: dict[str, Any],
        made_bases: dict[str, str],
        tmp_path: Path,
        example: str,
        manifest: str,
        text: str,
        said: str,
    ) -> None:
        """A gem or crate needs its registry, unreachable here: build_image fails with the
        tool's own reason, and the app has no version, active or not."""
        from sagactl.actions.build_from_tar import BuildFailed
        from sagactl.engine import open_store

        source = _with_env(EXAMPLES / example, tmp_path / example, {})
        (source / manifest).write_text(text)
        deps = _saga_deps(stack_store, tmp_path / "state")
        db = f"sqlite://{tmp_path / 'sagactl.db'}"
        with pytest.raises(BuildFailed) as failed:
            await _build_example(deps, db, example, source)
        assert failed.value.result.failed_action == "build_image"
        assert said in str(failed.value)
        async with open_store(db) as store, store.transaction() as tx:
            apps = await tx.fetchall("SELECT name, active_version FROM apps", ())
            versions = await tx.fetchall("SELECT id FROM versions", ())
        assert [tuple(row) for row in apps] in ([], [(example, None)])
        assert list(versions) == []
