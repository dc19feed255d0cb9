"""The SQLite store's file: the one name every process uses for it, and whether it can be one.

Ownership (`ownership.py`) and SQLite's own `-wal`/`-shm` files are found next to the
database by name. Two processes that reach one file by different names would not see each
other: a live run would look orphaned and be taken over, and their WAL files would differ.
So the store opens the file by its real path (symlinks and relative parts resolved), and
refuses a file that has a second name it cannot resolve: a hard link or a bind mount of
the file alone. A directory bind mount is fine: the directory, and so every file next to
the database, is the same through either path.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import RunNotFound
from .records import StoreUnusable

_WHY = {
    errno.EROFS: "it is on a read-only file system",
    errno.EPERM: "writing it is not permitted (an immutable file? see lsattr)",
    errno.EACCES: "permission denied",
    errno.ENOSPC: "the disk is full",
}


def database_path(url: str) -> Path:
    """`sqlite:///abs/path.db`, `sqlite://rel.db` or a bare path -> the file's real path."""
    given = url[len("sqlite://") :] if url.startswith("sqlite://") else url
    if not given.strip():
        raise StoreUnusable(
            "the database URL names no file: use sqlite:///PATH, a path, or postgresql://..."
        )
    return Path(os.path.realpath(given))


def run_not_found(path: Path, run_id: str) -> RunNotFound:
    """No run `run_id` in the database at `path`."""
    return RunNotFound(f"no run {run_id!r} in {path}")


def reason(exc: OSError) -> str:
    """An OS error as the words of one error line."""
    return _WHY.get(exc.errno or 0) or exc.strerror or str(exc)


def check_database_file(path: Path) -> None:
    """Refuse, in one line naming `path`, a file this store cannot use, before anything
    writes to it: a directory, an unwritable file, a second name, a foreign database."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnusable(f"{path}: cannot create its directory: {reason(exc)}") from None
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise StoreUnusable(f"{path}: cannot create the database: {_dir_reason(path)}")
        return
    if path.is_dir():
        raise StoreUnusable(f"{path}: is a directory, not a database file")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreUnusable(
            f"{path}: cannot open the database for writing: {reason(exc)}"
        ) from None
    try:
        links = os.fstat(fd).st_nlink
    finally:
        os.close(fd)
    if links > 1:
        raise StoreUnusable(
            f"{path}: the database file has {links} hard links; processes using different"
            " names would not see each other's runs: keep one name"
        )
    if _is_mount_point(path):
        raise StoreUnusable(
            f"{path}: the database file is bind-mounted on its own; processes using"
            " different names would not see each other's runs: bind-mount its directory"
        )
    if not os.access(path.parent, os.W_OK):
        raise StoreUnusable(f"{path}: cannot write next to the database: {_dir_reason(path)}")
    _check_contents(path)


def _check_contents(path: Path) -> None:
    """A SQLite database that is ours (or empty), read without writing anything."""
    try:
        conn = sqlite3.connect(path, timeout=60.0)
    except sqlite3.Error as exc:
        raise StoreUnusable(f"{path}: cannot open the database: {exc}") from None
    try:
        tables = {
            str(name)
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.DatabaseError as exc:
        raise unusable(path, exc) from None
    finally:
        conn.close()
    if tables and "schema_migrations" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreUnusable(
            f"{path}: not a sagactl database (it holds tables {shown} and no"
            " schema_migrations): name a new file or a sagactl database"
        )


def unusable(path: Path, exc: sqlite3.DatabaseError) -> StoreUnusable:
    """A SQLite error that says the file is not (or no longer) a usable database."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_NOTADB:
        return StoreUnusable(f"{path}: not a SQLite database ({exc})")
    if code == sqlite3.SQLITE_CORRUPT:
        return StoreUnusable(f"{path}: the database is corrupt ({exc}): restore a backup")
    return StoreUnusable(f"{path}: {exc}")


def is_unusable(exc: BaseException) -> bool:
    """Whether a SQLite error means the database file itself is damaged or unreadable."""
    return isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CORRUPT,
    )


def _dir_reason(path: Path) -> str:
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        return reason(exc)
    try:
        readonly = bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
    finally:
        os.close(fd)
    return _WHY[errno.EROFS] if readonly else f"{path.parent} is not writable"


def _is_mount_point(path: Path) -> bool:
    """Whether `path` (a file) is itself a mount point: a bind mount of the file alone."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            lines = mounts.read().splitlines()
    except OSError:
        return False
    target = str(path)
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and _unescape(fields[4]) == target:
            return True
    return False


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (`\\040`)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
