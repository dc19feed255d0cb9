"""Issue 10, item 16: what unpacking needs (times in range, names that fit under the unpack
root, link counts) is checked while the upload streams in, so an archive that passes the
checks always unpacks, and one that cannot is refused with one short InputError line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar.staging import StagingArea, extract, unpacking_dir
from sagactl.actions.build_from_tar.tarcheck import StagingLimits
from sagactl.actions.build_from_tar.tarheader import MAX_TIME, MIN_TIME
from sagactl.actions.build_from_tar.tarmodel import PATH_MAX
from sagactl.engine import InputError
from tars import M, make_tar

STREAM = "stream-limits"


def _timed(mtime: int, fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo("app.py")
        info.size, info.mtime = 2, mtime
        tar.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


def _path_of(length: int) -> str:
    """A relative path of exactly `length` bytes, in components of at most 200 bytes."""
    parts, left = [], length
    while left > 201:
        parts.append("d" * 200)
        left -= 201
    parts.append("f" * left)
    path = "/".join(parts)
    assert len(path) == length
    return path


def _refused_cleanly(message: str, tmp_path: Path) -> None:
    assert "\n" not in message and len(message) < 200, message
    assert str(tmp_path) not in message, "the error line shows a server path"


class TestTimes:
    @pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
    @pytest.mark.parametrize("mtime", [10**12, 2**62, MAX_TIME + 1, MIN_TIME - 1])
    def test_time_out_of_range_refused_while_staging(
        self, mtime: int, fmt: int, area: StagingArea, tmp_path: Path
    ) -> None:
        """A huge or far-past mtime (base-256 in GNU, a pax record) is refused while staging;
        it used to pass and then raise OverflowError from os.utime, retried as transient."""
        with pytest.raises(InputError) as info:
            area.stage_file(STREAM, io.BytesIO(_timed(mtime, fmt)))
        assert "member 'app.py'" in str(info.value) and "mtime" in str(info.value)
        _refused_cleanly(str(info.value), tmp_path)
        assert list(area.directory.iterdir()) == []

    @pytest.mark.parametrize("mtime", [MAX_TIME, MIN_TIME, 0])
    def test_times_at_the_bounds_unpack(
        self, mtime: int, area: StagingArea, tmp_path: Path
    ) -> None:
        """The extreme times allowed are really set on the unpacked file."""
        staged = area.stage_file(STREAM, io.BytesIO(_timed(mtime, tarfile.GNU_FORMAT)))
        extract(staged.path, tmp_path / "src")
        assert os.stat(tmp_path / "src" / "app.py").st_mtime == mtime


class TestPathLengths:
    def test_name_that_fits_only_without_the_root_is_refused(
        self, area: StagingArea, tmp_path: Path
    ) -> None:
        """A 4,050-byte name is under the archive's 4,096 limit but not under the unpack
        root: refused with one line, no server path (it was ENAMETOOLONG, ~4 KB long)."""
        data = make_tar([M(_path_of(4050), data=b"x")])
        staged = area.stage_file(STREAM, io.BytesIO(data))
        with pytest.raises(InputError) as info:
            extract(staged.path, tmp_path / "src")
        _refused_cleanly(str(info.value), tmp_path)
        assert "name is 4050 bytes, over the limit of" in str(info.value)
        assert not (tmp_path / "src").exists() and not unpacking_dir(tmp_path / "src").exists()

    def test_staging_under_the_root_refuses_it_before_the_checkpoint(self, tmp_path: Path) -> None:
        """Limits made for the unpack root refuse the name while staging."""
        dest = tmp_path / "sources" / STREAM
        area = StagingArea(tmp_path / "staging", StagingLimits().under(unpacking_dir(dest)))
        with pytest.raises(InputError, match="name is 4096 bytes, over the limit"):
            area.stage_file(STREAM, io.BytesIO(make_tar([M(_path_of(4096), data=b"x")])))

    def test_longest_name_that_fits_unpacks(self, area: StagingArea, tmp_path: Path) -> None:
        """The longest name the root leaves room for unpacks; one byte more is refused."""
        dest = tmp_path / "src"
        room = PATH_MAX - 2 - len(os.fsencode(unpacking_dir(dest)))
        staged = area.stage_file(STREAM, io.BytesIO(make_tar([M(_path_of(room), data=b"x")])))
        extract(staged.path, dest)
        assert (dest / _path_of(room)).read_bytes() == b"x"
        too_long = area.stage_file("stream-limits2", io.BytesIO(make_tar([M(_path_of(room + 1))])))
        with pytest.raises(InputError, match=f"over the limit of {room}$"):
            extract(too_long.path, tmp_path / "srd")  # a root of the same length

    def test_symlink_target_of_path_max_refused(self, area: StagingArea, tmp_path: Path) -> None:
        """A 4,096-byte symlink target is refused (symlink() takes at most 4,095); one of
        4,095 bytes unpacks."""
        fits = "./" * 2045 + "app.py"[:5]
        assert len(fits) == 4095
        files = [M("app.p", data=b"x")]
        staged = area.stage_file(STREAM, io.BytesIO(make_tar([*files, M("ok", "l", link=fits)])))
        extract(staged.path, tmp_path / "src")
        assert os.readlink(tmp_path / "src" / "ok") == fits
        with pytest.raises(InputError, match="target over 4095 bytes"):
            area.stage_file("stream-limits2", io.BytesIO(make_tar([M("no", "l", link=fits + "/")])))


class TestHardLinks:
    def test_links_per_file_capped(self, tmp_path: Path) -> None:
        """More hard links to one file than the filesystem allows are refused while staging
        (ext4 fails the 65,001st with EMLINK); links to links count against the file."""
        area = StagingArea(tmp_path / "staging", StagingLimits(max_links_per_file=3))
        members = [M("a", data=b"x"), M("b", "h", link="a"), M("c", "h", link="b")]
        area.stage_file(STREAM, io.BytesIO(make_tar(members)))
        with pytest.raises(InputError, match="more than 3 hard links to 'a'"):
            area.stage_file(
                "stream-limits2", io.BytesIO(make_tar([*members, M("d", "h", "", "a")]))
            )


@pytest.mark.slow
class TestThroughTheCommand:
    @pytest.mark.parametrize(
        "data",
        [_timed(10**12, tarfile.GNU_FORMAT), make_tar([M(_path_of(4080), data=b"x")])],
        ids=["huge mtime", "4080-byte name"],
    )
    def test_build_exits_2_with_one_line(self, data: bytes, cli_env: dict[str, str]) -> None:
        """`sagactl build` refuses both at once: exit 2, one short error line, no retries,
        no server path."""
        sagactl = str(Path(sys.executable).with_name("sagactl"))
        result = subprocess.run(
            [sagactl, "build", "limits", "-"],
            input=data,
            env=cli_env,
            capture_output=True,
            timeout=120,
        )
        errors = [line for line in result.stderr.decode().splitlines() if line.startswith("error")]
        assert result.returncode == 2, result.stderr.decode()
        assert len(errors) == 1 and len(errors[0]) < 250, errors
        assert cli_env["SAGACTL_BUILD_DIR"] not in errors[0]
        assert "Traceback" not in result.stderr.decode()
