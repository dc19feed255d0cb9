"""Property: any tree of files, directories and internal links stages and unpacks exactly."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sagactl.actions.build_from_tar.staging import StagingArea, extract

NAMES = st.text(alphabet="abcdefghij-_.0123456789é", min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)


@st.composite
def trees(draw: st.DrawFn) -> dict[str, tuple[str, bytes | str]]:
    """path -> ("f", data) | ("d", "") | ("l", relative target inside the tree)."""
    tree: dict[str, tuple[str, bytes | str]] = {}
    folded: set[str] = set()
    dirs = [""]
    for _ in range(draw(st.integers(1, 25))):
        parent = draw(st.sampled_from(dirs))
        name = draw(NAMES)
        path = f"{parent}/{name}" if parent else name
        if path.casefold() in folded:
            continue
        folded.add(path.casefold())
        kind = draw(st.sampled_from("ffdl"))
        if kind == "d":
            tree[path] = ("d", "")
            dirs.append(path)
        elif kind == "f":
            tree[path] = ("f", draw(st.binary(max_size=2000)))
        else:
            files = [p for p, (k, _) in tree.items() if k == "f"]
            if not files:
                continue
            target = draw(st.sampled_from(files))
            depth = path.count("/")
            tree[path] = ("l", "../" * depth + target)
    if not tree:
        tree["index.html"] = ("f", b"x")  # an empty archive is refused, rightly
    return tree


def _tar(tree: dict[str, tuple[str, bytes | str]], gz: bool) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for path, (kind, body) in tree.items():
            info = tarfile.TarInfo(path)
            if kind == "f":
                assert isinstance(body, bytes)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            elif kind == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE
                info.linkname = str(body)
                tar.addfile(info)
    return buf.getvalue()


class TestRoundTrip:
    @settings(max_examples=60, deadline=None)
    @given(tree=trees(), gz=st.booleans())
    def test_unpacks_exactly(self, tree: dict[str, tuple[str, bytes | str]], gz: bool) -> None:
        """Every file's bytes, every directory and every link target come back as packed."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            area = StagingArea(root / "staging")
            staged = area.stage_file("roundtrip", io.BytesIO(_tar(tree, gz)))
            dest = root / "src"
            extract(staged.path, dest, sha256=staged.sha256)
            for path, (kind, body) in tree.items():
                target = dest / path
                if kind == "f":
                    assert target.read_bytes() == body
                elif kind == "d":
                    assert target.is_dir() and not target.is_symlink()
                else:
                    assert os.readlink(target) == body
                    assert target.resolve().is_relative_to(dest.resolve())
