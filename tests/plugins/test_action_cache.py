"""`action_cache`: the installed actions' descriptions, read from a cache file while
nothing that made them changed, and from the plugins again when something did."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sagactl.engine.action_cache import DescribedActions, action_catalog
from sagactl.engine.plugins import load_plugins


def _cache(folder: Path) -> Path:
    (path,) = folder.glob("actions-*.json")
    return path


class TestActionCache:
    def test_written_then_read_instead_of_the_plugins(self, tmp_path: Path) -> None:
        """A first call describes the loaded plugins and writes them; the next reads the
        file (a description changed in it shows)."""
        first = action_catalog(tmp_path)
        assert first is load_plugins().actions
        path = _cache(tmp_path)
        data = json.loads(path.read_text())
        rows = data["actions"]["infos"]
        assert [row["name"] for row in rows] == list(first.names())
        rows[0]["description"] = "read from the cache"
        path.write_text(json.dumps(data))

        again = action_catalog(tmp_path)
        assert isinstance(again, DescribedActions)
        assert again.names() == first.names()
        info = again.info(rows[0]["name"])
        assert info is not None and info.description == "read from the cache"
        real = first.info(rows[1]["name"])
        assert again.info(rows[1]["name"]) == real

    def test_a_changed_source_file_is_seen(self, tmp_path: Path) -> None:
        """A source file the descriptions came from that changed since (an editable
        install's plugin edited): the plugins are described again."""
        source = tmp_path / "plugin_module.py"
        source.write_text("")
        cache = tmp_path / "cache"
        action_catalog(cache)
        path = _cache(cache)
        data = json.loads(path.read_text())
        data["actions"]["sources"].append([str(source), source.stat().st_mtime_ns])
        path.write_text(json.dumps(data))
        assert isinstance(action_catalog(cache), DescribedActions)

        os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
        assert action_catalog(cache) is load_plugins().actions

    def test_a_torn_or_foreign_file_is_ignored(self, tmp_path: Path) -> None:
        """What cannot be read as ours costs a rescan, never an error."""
        action_catalog(tmp_path)
        path = _cache(tmp_path)
        data = json.loads(path.read_text())
        data["actions"]["infos"][0]["unknown_field"] = 1
        path.write_text(json.dumps(data))
        assert action_catalog(tmp_path) is load_plugins().actions
        path.write_text("{not json")
        assert action_catalog(tmp_path) is load_plugins().actions
