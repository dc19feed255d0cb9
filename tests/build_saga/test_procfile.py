"""Procfile parsing (Heroku's rules) and its merge with app.toml services."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import appconfig, procfile
from sagactl.engine import InputError


class TestProcfileParse:
    def test_entries_comments_colons_crlf_bom(self) -> None:
        """Comments and blank lines skipped, colons kept in commands, CRLF and BOM handled."""
        raw = (
            b"\xef\xbb\xbf# the app\r\n"
            b"web: gunicorn app:app --bind 0.0.0.0:$PORT\r\n"
            b"\r\n"
            b"  worker:python worker.py   \r\n"
            b"release-1: ./bin/migrate --url=postgres://db:5432/x\r\n"
        )
        assert procfile.parse(raw) == {
            "web": {"command": "gunicorn app:app --bind 0.0.0.0:$PORT", "port": None},
            "worker": {"command": "python worker.py", "port": None},
            "release-1": {"command": "./bin/migrate --url=postgres://db:5432/x", "port": None},
        }

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (
                b"web: a\nweb: b\n",
                "Procfile:2:1: process type 'web' is declared twice (first on line 1)",
            ),
            (b"web: a\nworker:\n", "Procfile:2:1: process type 'worker' has an empty command"),
            (b"web: a\nWeb: b\n", "Procfile:2:1: process type 'Web' must be 1-63 of lowercase"),
            (b"web a\n", "Procfile:1:1: expected 'name: command'"),
            (b"-web: a\n", "Procfile:1:1: process type '-web' must be"),
            (b"w" * 64 + b": a\n", "Procfile:1:1: process type '" + "w" * 64 + "' must be 1-63"),
            (b": a\n", "Procfile:1:1: process type '' must be"),
            (b"# nothing\n\n", "Procfile: the Procfile declares no process types"),
            (b"web: caf\xe9\n", "Procfile:1: not valid UTF-8"),
        ],
        ids=[
            "duplicate",
            "empty",
            "uppercase",
            "no colon",
            "leading dash",
            "too long",
            "empty name",
            "no entries",
            "not utf-8",
        ],
    )
    def test_errors_with_line_numbers(self, raw: bytes, expected: str) -> None:
        """Each bad Procfile gives one error naming the line."""
        with pytest.raises(InputError) as info:
            procfile.parse(raw)
        assert str(info.value).startswith(expected)

    def test_63_characters_allowed(self) -> None:
        """A 63-character name is the longest allowed."""
        assert list(procfile.parse(b"a" * 63 + b": x\n")) == ["a" * 63]


class TestServicesMerge:
    def test_app_toml_overrides_and_adds(self, tmp_path: Path) -> None:
        """app.toml services override Procfile entries of the same name and add ports."""
        (tmp_path / "Procfile").write_text("web: python app.py\nworker: python w.py\n")
        config = appconfig.parse(b'[services.web]\ncommand = "python app.py --fast"\nport = 9000\n')
        services = procfile.services_for(tmp_path, config, "python")
        assert services == {
            "web": {"command": "python app.py --fast", "port": 9000},
            "worker": {"command": "python w.py", "port": None},
        }

    def test_web_gets_default_port(self, tmp_path: Path) -> None:
        """A Procfile web process without a port gets the default one."""
        (tmp_path / "Procfile").write_text("web: ./serve\n")
        assert procfile.services_for(tmp_path, appconfig.empty(), "go")["web"]["port"] == 8080

    @pytest.mark.parametrize("stack", ["python", "node", "bun", "go", "ruby", "rust", "static"])
    def test_stack_default(self, stack: str, tmp_path: Path) -> None:
        """Neither Procfile nor services: the stack's default web command."""
        services = procfile.services_for(tmp_path, appconfig.empty(), stack)
        assert services == {"web": {"command": procfile.DEFAULT_WEB[stack], "port": 8080}}

    def test_dockerfile_runs_its_own_cmd(self, tmp_path: Path) -> None:
        """A Dockerfile app's web service runs its image's CMD (command None) on a port."""
        services = procfile.services_for(tmp_path, appconfig.empty(), "dockerfile")
        assert services == {"web": {"command": None, "port": 8080}}

    def test_port_only_takes_the_procfile_command(self, tmp_path: Path) -> None:
        """`[services.web]` with only a port and a health path merges with the Procfile's
        command (the contract: Procfile entries and app.toml services merge)."""
        (tmp_path / "Procfile").write_text("web: ./serve --fast\n")
        config = appconfig.parse(b'[services.web]\nport = 9000\nhealth = "/healthz"\n')
        services = procfile.services_for(tmp_path, config, "go")
        assert services == {
            "web": {"command": "./serve --fast", "port": 9000, "health": "/healthz"}
        }

    def test_port_only_web_without_procfile_gets_the_stack_default(self, tmp_path: Path) -> None:
        """A web service with a port and no command anywhere runs the stack's default."""
        config = appconfig.parse(b"[services.web]\nport = 9000\n")
        services = procfile.services_for(tmp_path, config, "static")
        assert services == {"web": {"command": procfile.DEFAULT_WEB["static"], "port": 9000}}

    def test_other_service_without_any_command_refused(self, tmp_path: Path) -> None:
        """A non-web service with no command in app.toml nor the Procfile is refused."""
        (tmp_path / "Procfile").write_text("web: ./serve\n")
        config = appconfig.parse(b"[services.worker]\nport = 9000\n")
        with pytest.raises(InputError, match=r"services\.worker has no command"):
            procfile.services_for(tmp_path, config, "go")
