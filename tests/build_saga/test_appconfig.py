"""app.toml: found at the root or in .sagactl/, normalised, and every error located."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import appconfig
from sagactl.engine import InputError

GOOD = b"""
name = "shop"

[build]
dockerfile = "deploy/Containerfile"
base_image = "oci:/images/python:3.12"

[env]
DEBUG = "1"
WORKERS = 4

[services.web]
command = "gunicorn app:app --bind :$PORT"
port = 8000

[services.worker]
command = "python worker.py"
"""

BAD: dict[str, tuple[bytes, str]] = {
    "syntax": (b'name = "shop"\n[build\n', "app.toml:2:7: "),
    "unterminated string": (b'name = "shop\n', "app.toml:1:"),
    "end of document": (b"name = [", "app.toml:1:9: Invalid value"),
    "duplicate key": (b'name = "a"\nname = "b"\n', "app.toml:2:"),
    "bom": (b'\xef\xbb\xbfname = "a"\n', "app.toml:1:1: starts with a byte-order mark"),
    "not utf-8": (b'name = "a"\n# caf\xe9\n', "app.toml:2:6: not valid UTF-8"),
    "unknown key": (b'name = "a"\ncolour = "red"\n', "app.toml:2:1: unknown key 'colour'"),
    "unknown build key": (b"[build]\nimage = 'x'\n", "app.toml:2:1: unknown key 'build.image'"),
    "bad name": (b'name = "Shop_1"\n', "app.toml:1:1: name 'Shop_1' must match"),
    "name not a string": (b"name = 3\n", "name must be a string, not int"),
    "env not a table": (b'env = "x"\n', "env must be a table"),
    "env bad name": (b'[env]\n"1X" = "a"\n', "env name '1X' is not a valid variable name"),
    "env bool": (b"[env]\nDEBUG = true\n", "app.toml:2:1: env.DEBUG must be a string or a number"),
    "env loader variable": (
        b'[env]\nLD_PRELOAD = "/app/x.so"\n',
        "app.toml:2:1: env name 'LD_PRELOAD' is not allowed",
    ),
    "env lowercase loader": (
        b'[env]\nld_library_path = "/x"\n',
        "env name 'ld_library_path' is not allowed",
    ),
    "env gconv": (b'[env]\nGCONV_PATH = "/x"\n', "env name 'GCONV_PATH' is not allowed"),
    "env bash env": (b'[env]\nBASH_ENV = "/x"\n', "env name 'BASH_ENV' is not allowed"),
    "env port": (b'[env]\nPORT = "80"\n', "env name 'PORT' is not allowed: the runtime allocates"),
    "env sagactl": (b'[env]\nSAGACTL_VERSION = "x"\n', "env name 'SAGACTL_VERSION' is not allowed"),
    "service bad health": (
        b'[services.web]\nhealth = "up"\n',
        "services.web.health must be an HTTP path",
    ),
    "service health space": (b'[services.web]\nhealth = "/a b"\n', "services.web.health must be"),
    "service empty command": (b'[services.web]\ncommand = " "\n', "services.web.command is empty"),
    "service bad port": (b'[services.web]\ncommand = "x"\nport = 70000\n', "app.toml:3:1"),
    "service bad name": (b'[services.Web]\ncommand = "x"\n', "service name 'Web' must be"),
    "dockerfile escapes": (b'[build]\ndockerfile = "../Dockerfile"\n', "inside the app"),
    "absurd string": (b'name = "a"\n[env]\nX = "' + b"y" * 20000 + b'"\n', "longer than"),
}


class TestAppConfig:
    def test_good_file_normalised(self) -> None:
        """Every section is read and normalised (numbers in env become strings)."""
        config = appconfig.parse(GOOD)
        assert config == {
            "name": "shop",
            "build": {
                "dockerfile": "deploy/Containerfile",
                "base_image": "oci:/images/python:3.12",
            },
            "env": {"DEBUG": "1", "WORKERS": "4"},
            "services": {
                "web": {"command": "gunicorn app:app --bind :$PORT", "port": 8000},
                "worker": {"command": "python worker.py", "port": None},
            },
            "source": "app.toml",
        }

    def test_absent_is_empty(self, tmp_path: Path) -> None:
        """An app without app.toml gets the empty config."""
        assert appconfig.load(tmp_path) == appconfig.empty()

    def test_found_in_dot_sagactl(self, tmp_path: Path) -> None:
        """.sagactl/app.toml is read, and errors name that path."""
        (tmp_path / ".sagactl").mkdir()
        (tmp_path / ".sagactl" / "app.toml").write_bytes(b'name = "x"\nnope = 1\n')
        with pytest.raises(InputError, match=r"^\.sagactl/app\.toml:2:1: unknown key 'nope'"):
            appconfig.load(tmp_path)

    def test_both_places_refused(self, tmp_path: Path) -> None:
        """Two app.toml files are ambiguous and refused."""
        (tmp_path / ".sagactl").mkdir()
        (tmp_path / ".sagactl" / "app.toml").write_text("")
        (tmp_path / "app.toml").write_text("")
        with pytest.raises(InputError, match=r"both app\.toml and \.sagactl/app\.toml"):
            appconfig.load(tmp_path)

    def test_huge_refused(self) -> None:
        """A file over 1 MB is refused before parsing."""
        with pytest.raises(InputError, match="over the limit of 1048576"):
            appconfig.parse(b"# " + b"x" * (1 << 20))

    @pytest.mark.parametrize("case", sorted(BAD))
    def test_errors_located(self, case: str) -> None:
        """Each broken app.toml gives one error line with the file and position."""
        raw, expected = BAD[case]
        with pytest.raises(InputError) as info:
            appconfig.parse(raw)
        assert expected in str(info.value)
        assert str(info.value).startswith("app.toml")
        assert "\n" not in str(info.value)
