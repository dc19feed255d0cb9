"""Stack detection from the files at an app's root."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import appconfig, stack
from sagactl.engine import InputError

CASES = [
    ("dockerfile", ["Dockerfile", "requirements.txt"]),
    ("dockerfile", ["Containerfile", "package.json"]),
    ("python", ["requirements.txt"]),
    ("python", ["pyproject.toml"]),
    ("python", ["Pipfile"]),
    ("node", ["package.json"]),
    ("bun", ["package.json", "bun.lockb"]),
    ("bun", ["bunfig.toml"]),
    ("go", ["go.mod"]),
    ("ruby", ["Gemfile"]),
    ("rust", ["Cargo.toml"]),
    ("static", ["index.html"]),
    ("python", ["requirements.txt", "index.html"]),
]


class TestDetectStack:
    @pytest.mark.parametrize(
        ("expected", "files"), CASES, ids=[f"{e}-{'+'.join(f)}" for e, f in CASES]
    )
    def test_detects(self, expected: str, files: list[str], tmp_path: Path) -> None:
        """The first matching rule wins (a Dockerfile over everything, bun over node)."""
        for name in files:
            (tmp_path / name).write_text("x")
        assert stack.detect(tmp_path) == expected

    def test_symlinked_manifest_counts(self, tmp_path: Path) -> None:
        """requirements.txt -> requirements/prod.txt is a python app."""
        (tmp_path / "requirements").mkdir()
        (tmp_path / "requirements" / "prod.txt").write_text("flask")
        (tmp_path / "requirements.txt").symlink_to("requirements/prod.txt")
        assert stack.detect(tmp_path) == "python"

    def test_dangling_manifest_does_not(self, tmp_path: Path) -> None:
        """A dangling symlink is not a manifest."""
        (tmp_path / "package.json").symlink_to("missing.json")
        with pytest.raises(InputError):
            stack.detect(tmp_path)

    def test_nothing_names_what_was_looked_for(self, tmp_path: Path) -> None:
        """No known file: the error lists every file looked for."""
        (tmp_path / "README.md").write_text("x")
        with pytest.raises(InputError) as info:
            stack.detect(tmp_path)
        for name in ("Dockerfile", "requirements.txt", "package.json", "go.mod", "index.html"):
            assert name in str(info.value)

    def test_app_toml_dockerfile(self, tmp_path: Path) -> None:
        """build.dockerfile in app.toml makes a dockerfile app; a missing one is an error."""
        (tmp_path / "deploy").mkdir()
        (tmp_path / "deploy" / "web.Containerfile").write_text("FROM x")
        config = appconfig.parse(b'[build]\ndockerfile = "deploy/web.Containerfile"\n')
        assert stack.detect(tmp_path, config) == "dockerfile"
        assert stack.dockerfile_of(tmp_path, config) == tmp_path / "deploy" / "web.Containerfile"
        missing = appconfig.parse(b'[build]\ndockerfile = "nope"\n')
        with pytest.raises(InputError, match=r"build\.dockerfile 'nope'"):
            stack.detect(tmp_path, missing)
