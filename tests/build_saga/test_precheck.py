"""precheck: the config checks predicted from the staging pass, before unpacking.

Each upload is staged (kept files and member kinds seen on the way) and also unpacked, and
the prediction is compared with the real checks (load_config, detect_stack, parse_services)
on the unpacked tree: "sound" must never be said of an upload the real checks refuse."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import appconfig, procfile, stack
from sagactl.actions.build_from_tar.precheck import FileCapture
from sagactl.actions.build_from_tar.staging import StagingArea, extract
from sagactl.engine import InputError
from tars import M, make_tar

pytestmark = pytest.mark.anyio
SITE = M("index.html", data=b"<h1>hi</h1>")
WEB = M("Procfile", data=b"web: ./serve\n")

CASES: dict[str, tuple[list[M], bool]] = {
    "a static site": ([SITE], True),
    "app.toml and Procfile": (
        [SITE, WEB, M("app.toml", data=b"[services.web]\nport = 8080\n")],
        True,
    ),
    "app.toml under .sagactl": (
        [SITE, M(".sagactl", "d", mode=0o755), M(".sagactl/app.toml", data=b'name = "x"\n')],
        True,
    ),
    "a python app in a subdirectory tree": (
        [M("requirements.txt", data=b"flask\n"), M("src", "d"), M("src/app.py", data=b"")],
        True,
    ),
    "a Containerfile named by app.toml": (
        [
            M("docker", "d"),
            M("docker/Build", data=b"FROM scratch\n"),
            M("app.toml", data=b'[build]\ndockerfile = "docker/Build"\n'),
        ],
        True,
    ),
    "bad toml": ([SITE, M("app.toml", data=b"[[[ nope")], False),
    "bad Procfile": ([SITE, M("Procfile", data=b"no colon\n")], False),
    "no stack": ([M("notes.txt", data=b"x")], False),
    "both app.toml places": (
        [SITE, M("app.toml", data=b""), M(".sagactl", "d"), M(".sagactl/app.toml", data=b"")],
        False,
    ),
    "a service without a command": (
        [SITE, M("app.toml", data=b"[services.worker]\nport = 9000\n")],
        False,
    ),
    "a named Containerfile that is missing": (
        [SITE, M("app.toml", data=b'[build]\ndockerfile = "nope"\n')],
        False,
    ),
    # Unsure (a link among the files the checks read): no prediction, whatever the truth.
    "a symlinked Procfile": (
        [SITE, M("procs", data=b"web: ./serve\n"), M("Procfile", "l", link="procs")],
        False,
    ),
    "a hard-linked app.toml": (
        [SITE, M("conf", data=b'name = "x"\n'), M("app.toml", "h", link="conf")],
        False,
    ),
    "a symlinked .sagactl": (
        [SITE, M("conf", "d"), M("conf/app.toml", data=b""), M(".sagactl", "l", link="conf")],
        False,
    ),
    "the stack's marker is a symlink": (
        [M("page.html", data=b"x"), M("index.html", "l", link="page.html")],
        False,
    ),
}


def real_checks_pass(source: Path) -> bool:
    try:
        config = appconfig.load(source)
        stack.detect(source, config)
        procfile.declared(source, config)
    except InputError:
        return False
    return True


@pytest.mark.parametrize("case", list(CASES))
async def test_prediction_against_the_real_checks(tmp_path: Path, case: str) -> None:
    members, sound = CASES[case]
    data = make_tar(members)
    area = StagingArea(tmp_path / "staging")
    capture = FileCapture()
    staged = await area.stage("upload-0001", io.BytesIO(data), observer=capture)
    assert staged.size == len(data)
    predicted = capture.config_is_sound(area.directory)
    assert predicted is sound
    extract(staged.path, tmp_path / "source", sha256=staged.sha256)
    if predicted:
        assert real_checks_pass(tmp_path / "source")
    assert sorted(p.name for p in area.directory.iterdir()) == ["upload-0001.tar"]  # no scratch


async def test_the_sound_cases_pass_the_real_checks_too(tmp_path: Path) -> None:
    """And the unsure ones are really unsure: some of them would pass."""
    results = {}
    for n, (case, (members, _)) in enumerate(CASES.items()):
        source = tmp_path / f"s{n}"
        staged = await StagingArea(tmp_path / "staging").stage(
            f"upload-{n:04d}", io.BytesIO(make_tar(members))
        )
        extract(staged.path, source)
        results[case] = real_checks_pass(source)
    assert results["a symlinked Procfile"] and results["the stack's marker is a symlink"]
    assert {case for case, (_, sound) in CASES.items() if sound} <= {
        case for case, passed in results.items() if passed
    }


def test_a_killed_checks_scratch_copy_is_swept_with_stale_uploads(tmp_path: Path) -> None:
    """A SIGKILL during the config check leaves its `.precheck-*` copy: the sweep of stale
    uploads removes it once old, and leaves fresh ones (a check under way) alone."""
    area = StagingArea(tmp_path / "staging")
    area.directory.mkdir()
    stale, fresh = area.directory / ".precheck-old", area.directory / ".precheck-new"
    for scratch in (stale, fresh):
        (scratch / "sub").mkdir(parents=True)
        (scratch / "sub" / "app.toml").write_text("name = 'x'\n")
    other = area.directory / "notes.txt"  # not ours: never touched
    other.write_text("keep")
    old = 1_000_000_000.0
    for path in (stale, other):
        os.utime(path, (old, old))
    assert area.sweep(older_than=3600) == [stale]
    assert not stale.exists() and fresh.exists() and other.exists()
