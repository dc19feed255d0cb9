"""Names and whole-archive rules: normalised paths, duplicates, case clashes, links."""

from __future__ import annotations

from sagactl.engine import InputError

from .tarmodel import PATH_MAX, Kind, Member, StagingLimits
from .tarmodel import show as _show


def normalise(raw: str, limits: StagingLimits, *, what: str = "member") -> str:
    """`./a//b/` -> `a/b`; refuses absolute paths, `..`, non-UTF-8 and over-long names."""
    shown = _show(raw)
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {shown}: name is not valid UTF-8") from None
    if "\x00" in raw:
        raise InputError(f"{what} {shown}: name contains a NUL byte")
    if len(encoded) > limits.max_name_bytes:
        raise InputError(
            f"{what} {_show(raw, 60)}: name is {len(encoded)} bytes, "
            f"over the limit of {limits.max_name_bytes}"
        )
    if raw.startswith("/"):
        raise InputError(f"{what} {shown}: absolute path")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise InputError(f"{what} {shown}: '..' in path (escapes the archive)")
        if len(part.encode("utf-8")) > limits.max_component_bytes:
            raise InputError(
                f"{what} {shown}: a path component is over the limit of "
                f"{limits.max_component_bytes} bytes"
            )
    return "/".join(parts)


class TreeChecker:
    """Whole-archive rules: duplicates, case clashes, file/directory conflicts, links."""

    def __init__(self, limits: StagingLimits) -> None:
        self.limits = limits
        self.kinds: dict[str, Kind] = {}
        """Every path in the tree, explicit members and implied parent directories."""
        self.explicit: set[str] = set()
        self.folded: dict[str, str] = {}
        self.symlinks: dict[str, str] = {}
        self.inodes: dict[str, str] = {}
        """Hard link -> the file it names (links to links count against the first file)."""
        self.links: dict[str, int] = {}

    def add(self, member: Member) -> None:
        name = member.name
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            kind = self.kinds.get(parent)
            if kind is None:
                self._claim_case(parent, member)
                self.kinds[parent] = Kind.DIR
            elif kind is not Kind.DIR:
                raise InputError(
                    f"member {_show(name)}: inside {_show(parent)}, which is a {kind.value}"
                )
        if name in self.explicit:
            raise InputError(f"member {_show(name)}: duplicate (the archive holds it twice)")
        existing = self.kinds.get(name)
        if existing is Kind.DIR and member.kind is not Kind.DIR:
            raise InputError(
                f"member {_show(name)}: a {member.kind.value} where earlier members "
                "need a directory"
            )
        if existing is None:
            self._claim_case(name, member)
        if member.kind is Kind.HARDLINK:
            self._link(member)
        self.kinds[name] = member.kind
        self.explicit.add(name)
        if member.kind is Kind.SYMLINK:
            self.symlinks[name] = member.target or ""

    def _link(self, member: Member) -> None:
        target = member.target or ""
        if target not in self.explicit or self.kinds[target] not in (Kind.FILE, Kind.HARDLINK):
            raise InputError(
                f"member {_show(member.name)}: hard link to {_show(target)}, "
                "which is not an earlier file of the archive"
            )
        inode = self.inodes.get(target, target)
        self.inodes[member.name] = inode
        self.links[inode] = self.links.get(inode, 1) + 1
        if self.links[inode] > self.limits.max_links_per_file:
            raise InputError(
                f"member {_show(member.name)}: more than {self.limits.max_links_per_file} "
                f"hard links to {_show(inode)}"
            )

    def _claim_case(self, path: str, member: Member) -> None:
        folded = path.casefold()
        other = self.folded.get(folded)
        if other is not None and other != path:
            raise InputError(
                f"member {_show(member.name)}: {_show(path)} differs only in case from "
                f"{_show(other)} (a case clash)"
            )
        self.folded[folded] = path

    def finish(self) -> None:
        """Resolve every symlink now that the whole listing is known."""
        for name in self.symlinks:
            self._resolve(name)

    def _resolve(self, name: str) -> None:
        target = self.symlinks[name]
        head = f"symlink {_show(name)} -> {_show(target)}"
        if not target:
            raise InputError(f"{head}: empty target")
        if target.startswith("/"):
            raise InputError(f"{head}: absolute target (leads outside the archive)")
        longest = min(self.limits.max_path_bytes, PATH_MAX - 1)
        if len(target.encode("utf-8", "surrogateescape")) > longest:
            raise InputError(f"{head}: target over {longest} bytes")
        hops = [0]

        def walk(link: str, seen: tuple[str, ...]) -> list[str]:
            """The path `link` resolves to, as components from the root."""
            hops[0] += 1
            if hops[0] > self.limits.max_link_depth or link in seen:
                raise InputError(f"{head}: symlink loop or chain over {self.limits.max_link_depth}")
            link_target = self.symlinks[link]
            if link_target.startswith("/"):
                raise InputError(
                    f"{head}: leads outside the archive (through absolute symlink "
                    f"{_show(link)} -> {_show(link_target)})"
                )
            path = link.split("/")[:-1]
            via = "" if link == name else f" (through symlink {_show(link)})"
            for part in link_target.split("/"):
                if part in ("", "."):
                    continue
                if part == "..":
                    if not path:
                        raise InputError(f"{head}: leads outside the archive{via}")
                    path.pop()
                    continue
                path.append(part)
                here = "/".join(path)
                if self.kinds.get(here) is Kind.SYMLINK:
                    path = walk(here, (*seen, link))
                    via = f" (through symlink {_show(here)})"
            return path

        walk(name, ())
