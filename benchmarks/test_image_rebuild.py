"""Issue 15: the rebuild of an app after a source-only change against its first build.

Both run the real buildah builder on the python base made here (made once, before the
rounds). A round's baseline is a first build: its requirements.txt carries a fresh comment,
so the install layer cannot come from the cache and pip really installs from PyPI. The
measured build then changes only app.py, and builds on the dependency image without
checking the install at all (target: at least 5x faster). $SAGACTL_TEST_BASE_STORE keeps
the buildah store (and the base) across sessions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagactl.plugins.builders import bases, storage
from sagactl.plugins.builders.base import BuilderOptions, BuildSpec
from sagactl.plugins.builders.buildah import BuildahBuilder

from .pairing import paired

REQUIREMENTS = "flask==3.0.3\ngunicorn==23.0.0\n"
APP = "from flask import Flask\n\napp = Flask(__name__)\n"


@pytest.fixture
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuildahBuilder]:
    for tool in ("buildah", "runc", "mmdebstrap", "slirp4netns"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup)")
    kept = os.environ.get("SAGACTL_TEST_BASE_STORE")
    root = Path(kept) if kept else tmp_path_factory.mktemp("bench-store")
    driver = os.environ.get("SAGACTL_BUILDAH_DRIVER", "auto")
    # The default driver (auto: overlay where it works); the store is named after the
    # driver it holds, as the tests' stack store is, so a kept store is shared with them.
    named = storage.resolve("buildah", driver, root / "overlay-root", root / "overlay-run")
    made = BuildahBuilder(
        BuilderOptions(
            work_dir=root / "work",
            storage_driver=driver,
            storage_root=root / f"{named.driver}-root",
            run_root=root / f"{named.driver}-run",
        )
    )
    yield made
    # No container and no overlay mount left behind in a pytest temp dir.
    subprocess.run([*made.command, "rm", "--all"], capture_output=True, check=False)
    mounted = str(root / f"{named.driver}-root" / named.driver)
    subprocess.run(["umount", "-R", "-l", mounted], capture_output=True, check=False)


class TestImageRebuild:
    @pytest.mark.timeout(3600)
    def test_source_only_rebuild_vs_first_build(
        self, benchmark: Any, builder: BuildahBuilder, tmp_path: Path, runner: asyncio.Runner
    ) -> None:
        """A Flask app served by gunicorn, both from PyPI: first build (install) vs rebuild."""
        runner.run(builder.prepare())
        runner.run(bases.ensure("python", builder.options, builder.command, lambda _: None))
        context = tmp_path / "app"
        context.mkdir()
        number = [0]

        def build() -> list[str]:
            number[0] += 1
            lines: list[str] = []
            spec = BuildSpec(
                app="bench",
                version=f"bench-v{number[0]}",
                context_dir=context,
                stack="python",
                command="gunicorn --bind 0.0.0.0:$PORT app:app",
                port=8080,
            )
            runner.run(builder.build(spec, lines.append))
            return lines

        def first_build() -> None:
            token = secrets.token_hex(8)
            (context / "requirements.txt").write_text(f"# {token}\n{REQUIREMENTS}")
            (context / "app.py").write_text(APP)
            lines = build()
            assert any(line.startswith("Successfully installed") for line in lines)

        def change_source() -> tuple[()]:
            (context / "app.py").write_text(APP + f"# {secrets.token_hex(8)}\n")
            return ()

        def rebuild() -> list[str]:
            return build()

        lines = paired(
            benchmark,
            rebuild,
            first_build,
            key="image_rebuild_source_only",
            units=1,
            baseline_key="image_first_build",
            baseline_units=1,
            rounds=3,
            prepare=change_source,
        )
        assert not any(line.startswith("Successfully installed") for line in lines)
        benchmark.extra_info.update(storage_driver=builder.storage.why)
        print(f"\nbuildah storage: {builder.storage.why}")


class TestImageUnpack:
    @pytest.mark.timeout(3600)
    def test_new_version_unpack_vs_first(
        self, benchmark: Any, builder: BuildahBuilder, tmp_path: Path, runner: asyncio.Runner
    ) -> None:
        """The runc runtime readying a new version's image (export from buildah, unpack,
        mount) when an earlier version of the app is unpacked already, against readying
        the first version into an empty cache. Images in buildah's storage are not unpacked
        at all (a working container of each is mounted), so both take about the same."""
        from sagactl.plugins.runtimes.images import ImageCache

        runner.run(builder.prepare())
        context = tmp_path / "app"
        context.mkdir()
        (context / "requirements.txt").write_text(REQUIREMENTS)
        number = [0]

        def build() -> Any:
            number[0] += 1
            (context / "app.py").write_text(APP + f"# {secrets.token_hex(8)}\n")
            spec = BuildSpec(
                app="unpack",
                version=f"unpack-v{number[0]}",
                context_dir=context,
                stack="python",
                command="gunicorn --bind 0.0.0.0:$PORT app:app",
                port=8080,
            )
            return runner.run(builder.build(spec, lambda _: None))

        first = build()
        shared = ImageCache(tmp_path / "shared", lambda: builder.command)
        with shared.locked():
            shared.unpack(first.ref, first.digest)
        fresh: list[ImageCache] = []

        def first_version() -> None:
            cache = ImageCache(tmp_path / f"fresh-{len(fresh)}", lambda: builder.command)
            fresh.append(cache)
            with cache.locked():
                cache.unpack(first.ref, first.digest)

        def next_version() -> tuple[Any]:
            for cache in fresh:  # unmounted, so the temp dir can go
                with cache.locked():
                    cache.prune([])
            return (build(),)

        def unpack(image: Any) -> int:
            with shared.locked():
                return shared.unpack(image.ref, image.digest).new_layers

        try:
            made = paired(
                benchmark,
                unpack,
                first_version,
                key="image_unpack_new_version",
                units=1,
                baseline_key="image_unpack_first_version",
                baseline_units=1,
                rounds=3,
                prepare=next_version,
            )
            assert made == 0  # nothing unpacked: the root is a buildah container's mount
        finally:
            for cache in (*fresh, shared):
                with cache.locked():
                    cache.prune([])
