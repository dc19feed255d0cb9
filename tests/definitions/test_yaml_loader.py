"""The safe YAML loader: what it refuses (with file:line:column) and how it reads scalars."""

from __future__ import annotations

from pathlib import Path

import pytest
from sagactl.engine import DefinitionError
from sagactl.engine.yaml_loader import (
    YamlMapping,
    YamlScalar,
    load_yaml,
    load_yaml_bytes,
    load_yaml_text,
)


def _refused(path: Path) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        load_yaml(path)
    return caught.value


def _at(error: DefinitionError) -> tuple[int, int]:
    assert error.location is not None
    return error.location.line, error.location.column


class TestRefusals:
    def test_python_tag(self, write) -> None:
        """A `!!python/object/apply` tag is refused at the tagged node, not executed."""
        path = write("a: 1\nb: !!python/object/apply:os.system ['touch pwned']\n")
        error = _refused(path)
        assert error.message == "YAML tags (!!python/object/apply:os.system) are not allowed"
        assert _at(error) == (2, 4)
        assert error.location.file == str(path)
        assert not (path.parent / "pwned").exists()

    def test_any_explicit_tag(self, write) -> None:
        """Even harmless tags (`!!str`, `!`) are refused: no tag changes what a scalar is."""
        assert _at(_refused(write("x:\n  - !!str 1\n"))) == (2, 5)
        assert "(!)" in _refused(write("x: ! y\n")).message

    def test_anchor(self, write) -> None:
        """An anchor is refused where it is declared, so an alias bomb never expands."""
        error = _refused(write('a: &a ["lol", "lol"]\n'))
        assert error.message == "YAML anchors (&a) are not allowed: write the value out"
        assert _at(error) == (1, 4)

    def test_billion_laughs(self, write) -> None:
        """The billion-laughs alias bomb is refused at its first anchor."""
        lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for n in range(1, 10):
            prev, cur = chr(ord("a") + n - 1), chr(ord("a") + n)
            lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
        error = _refused(write("\n".join(lines) + "\n"))
        assert "anchors (&a)" in error.message
        assert _at(error) == (1, 4)

    def test_alias(self, write) -> None:
        """An alias alone (its anchor unknown) is refused at the alias."""
        error = _refused(write("a: 1\nb: *a\n"))
        assert error.message == "YAML aliases (*a) are not allowed: write the value out"
        assert _at(error) == (2, 4)

    def test_deep_flow_nesting(self, write) -> None:
        """10,000 nested flow lists are refused on their line, at or after the 65th level.

        PyYAML >= 6.0.4 scans ahead and stops flow nesting itself (at level 1,000); older
        versions hand us the events and we stop at level 65.
        """
        error = _refused(write("a: " + "[" * 10_000 + "]" * 10_000 + "\n"))
        assert error.message == "nested deeper than 64 levels"
        line, column = _at(error)
        assert line == 1
        assert 4 + 63 <= column <= 4 + 1000

    def test_deep_block_nesting(self, write) -> None:
        """2,000 nested block mappings (4 MB of indentation) are refused at the 65th level."""
        error = _refused(write("".join(" " * i + "k:\n" for i in range(2_000))))
        assert error.message == "nested deeper than 64 levels"
        assert _at(error) == (65, 65)

    def test_depth_limit_is_inclusive(self, write) -> None:
        """64 levels load; the limit is the documented one, not an accident of recursion."""
        document = load_yaml(write("[" * 64 + "]" * 64 + "\n"))
        assert document.data == _nested(64)

    def test_huge_file(self, tmp_path: Path) -> None:
        """A 50 MB file is refused from its size, naming the file and the limit."""
        path = tmp_path / "huge.yaml"
        with path.open("wb") as out:
            out.write(b"a: [")
            out.write(b"1, " * (50 * 1024 * 1024 // 3))
            out.write(b"1]\n")
        error = _refused(path)
        assert error.message == "file is 50.0 MiB; a definition may be at most 10 MiB"
        assert error.location is not None and error.location.file == str(path)
        assert error.location.line == 0

    def test_huge_text(self) -> None:
        """The size bound holds for text and bytes too, not only files."""
        with pytest.raises(DefinitionError, match="a definition may be at most"):
            load_yaml_text("a: 1\n", max_bytes=2)
        with pytest.raises(DefinitionError, match="a definition may be at most"):
            load_yaml_bytes(b"a: 1\n", max_bytes=2)

    def test_duplicate_key(self, write) -> None:
        """A key given twice is refused at the second one, naming the first's line."""
        error = _refused(write("a: 1\nb:\n  c: 2\n  c: 3\n"))
        assert error.message == "duplicate key 'c' (first at line 3)"
        assert _at(error) == (4, 3)

    @pytest.mark.parametrize(
        ("key", "kind"),
        [("1", "a number"), ("true", "a boolean"), ("~", "null"), ("1.5", "a number")],
    )
    def test_non_string_key(self, write, key: str, kind: str) -> None:
        """Keys that YAML reads as numbers, booleans or null are refused."""
        error = _refused(write(f"a:\n  {key}: x\n"))
        assert error.message == f'key {key} is {kind}: keys must be strings (quote it: "{key}")'
        assert _at(error) == (2, 3)

    def test_complex_key(self, write) -> None:
        """A list as a key is refused."""
        error = _refused(write("? [a, b]\n: c\n"))
        assert error.message == "keys must be strings, not a mapping or a list"
        assert _at(error) == (1, 3)

    def test_syntax_error(self, write) -> None:
        """A YAML syntax error is reported at the parser's position."""
        error = _refused(write("a: [1, 2\nb: 3\n"))
        assert error.message.startswith("invalid YAML: ")
        assert _at(error) == (2, 2)

    def test_tab_indentation(self, write) -> None:
        """A tab where indentation is expected is a located syntax error."""
        error = _refused(write("a:\n\tb: 1\n"))
        assert error.message.startswith("invalid YAML")
        assert _at(error) == (2, 1)

    def test_two_documents(self, write) -> None:
        """A second document is refused where it starts."""
        error = _refused(write("a: 1\n---\nb: 2\n"))
        assert error.message == "only one YAML document is allowed per file (found '---')"
        assert _at(error) == (2, 1)

    def test_empty_file(self, write) -> None:
        """An empty file (or only comments) is refused."""
        error = _refused(write("# nothing\n"))
        assert error.message == "the file is empty: expected a saga definition"

    def test_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are refused at their position."""
        path = tmp_path / "latin1.yaml"
        path.write_bytes(b"a: 1\nb: caf\xe9\n")
        error = _refused(path)
        assert error.message == "not UTF-8 text"
        assert _at(error) == (2, 7)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist is one clear error naming it."""
        error = _refused(tmp_path / "absent.yaml")
        assert error.message == "cannot read: No such file or directory"
        assert error.location is not None and error.location.file.endswith("absent.yaml")


class TestScalars:
    def test_yaml11_words_stay_strings(self, write) -> None:
        """`no`, `on`, `yes`, `1:20`, `0x1F`, dates and `1_000` stay the strings they look like."""
        text = "a: no\nb: on\nc: yes\nd: 1:20\ne: 0x1F\nf: 2024-01-01\ng: 1_000\nh: 0o17\ni: Off\n"
        assert load_yaml(write(text)).data == {
            "a": "no",
            "b": "on",
            "c": "yes",
            "d": "1:20",
            "e": "0x1F",
            "f": "2024-01-01",
            "g": "1_000",
            "h": "0o17",
            "i": "Off",
        }

    def test_core_schema_values(self, write) -> None:
        """Only true/false, null/~, decimal integers and floats are not strings."""
        text = "a: true\nb: False\nc: null\nd: ~\ne:\nf: -12\ng: 1.5\nh: 1e3\ni: 0\n"
        data = load_yaml(write(text)).data
        assert data == {
            "a": True,
            "b": False,
            "c": None,
            "d": None,
            "e": None,
            "f": -12,
            "g": 1.5,
            "h": 1000.0,
            "i": 0,
        }
        assert type(data["f"]) is int and type(data["h"]) is float

    def test_leading_zero_is_ambiguous(self, write) -> None:
        """`010` (octal 8 in YAML 1.1, 10 in 1.2) is refused, with both readings and the fix."""
        error = _refused(write("metadata:\n  version: 010\n"))
        assert error.message == (
            "'010' is ambiguous (octal 8 in YAML 1.1, 10 in YAML 1.2): write it without the "
            'leading zero, or quote it ("010") for a string'
        )
        assert _at(error) == (2, 12)

    def test_leading_zero_not_octal(self, write) -> None:
        """`09` is no octal number but still ambiguous between 9 and the string."""
        error = _refused(write("v: 09\n"))
        assert error.message.startswith("'09' is ambiguous (9 in YAML 1.2)")

    def test_quoted_leading_zero(self, write) -> None:
        """A quoted `"010"` is the string, and remembered as quoted."""
        document = load_yaml(write('version: "010"\n'))
        assert document.data == {"version": "010"}
        node = document.node_at(["version"])
        assert node == YamlScalar("010", "010", True, node.location)

    def test_not_json_numbers(self, write) -> None:
        """`.inf` and `.nan` are refused: they are not JSON."""
        error = _refused(write("a: [1, -.inf]\n"))
        assert error.message == "'-.inf' is not a JSON number: quote it (\"-.inf\") for a string"
        assert _at(error) == (1, 8)

    def test_block_scalars_are_strings(self, write) -> None:
        """A block scalar is a quoted string, whatever it contains."""
        document = load_yaml(write("a: |\n  true\n"))
        assert document.data == {"a": "true\n"}
        assert isinstance(node := document.node_at(["a"]), YamlScalar) and node.quoted

    def test_plain_scalar_records_text(self, write) -> None:
        """A plain scalar keeps its source text next to the resolved value."""
        node = load_yaml(write("a: 1.50\n")).node_at(["a"])
        assert isinstance(node, YamlScalar)
        assert (node.value, node.text, node.quoted) == (1.5, "1.50", False)

    def test_utf8_bom_and_unicode(self, tmp_path: Path) -> None:
        """A UTF-8 BOM is accepted; columns count characters, not bytes."""
        path = tmp_path / "bom.yaml"
        path.write_bytes("\ufeffé: [ä, *x]\n".encode())
        error = _refused(path)
        assert _at(error) == (1, 8)


class TestLocations:
    def test_locate_value_and_key(self, write) -> None:
        """locate() finds a value, or with key=True the key, 1-based."""
        document = load_yaml(write("actions:\n  a:\n    uses: x\n    needs: [b, c]\n"))
        assert str(document.locate(["actions", "a", "uses"])).endswith(":3:11")
        assert str(document.locate(["actions", "a", "uses"], key=True)).endswith(":3:5")
        assert str(document.locate(["actions", "a", "needs", 1])).endswith(":4:16")

    def test_locate_missing_path(self, write) -> None:
        """A path that leaves the tree locates the deepest node that exists."""
        document = load_yaml(write("actions:\n  a:\n    uses: x\n"))
        assert str(document.locate(["actions", "a", "with", "k"])).endswith(":3:5")
        assert document.node_at(["actions", "a", "with"]) is None

    def test_mapping_keeps_order(self, write) -> None:
        """Mappings keep file order (error messages follow it)."""
        root = load_yaml(write("b: 1\na: 2\nc: 3\n")).root
        assert isinstance(root, YamlMapping)
        assert list(root.entries) == ["b", "a", "c"]


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


class TestPureParser:
    """Without libyaml the loader falls back to PyYAML's own parser, with the same results."""

    CASES = [
        "a: !!python/object/apply:os.system ['x']\n",
        'a: &a ["lol"]\n',
        "a: [" * 70 + "]" * 70 + "\n",
        "a: 1\na: 2\n",
        "a:\n  1: x\n",
        "v: 010\n",
        "a: [1, 2\nb: 3\n",
        "a: 1\n---\nb: 2\n",
    ]

    @pytest.mark.parametrize("text", CASES)
    def test_same_refusals(self, text: str, monkeypatch) -> None:
        """Each hostile case is refused with the same message and location by both parsers."""
        from sagactl.engine import yaml_loader

        with pytest.raises(DefinitionError) as fast:
            load_yaml_text(text, file="f.yaml")
        monkeypatch.setattr(yaml_loader, "_parser", yaml_loader._PyParser)
        with pytest.raises(DefinitionError) as pure:
            load_yaml_text(text, file="f.yaml")
        if not fast.value.message.startswith(
            "invalid YAML"
        ):  # libyaml words syntax errors its own way
            assert pure.value.message == fast.value.message
        assert str(pure.value.location) == str(fast.value.location)

    def test_same_data(self, monkeypatch) -> None:
        """Both parsers give the same data and locations for a valid file."""
        from sagactl.engine import yaml_loader

        text = "a: no\nb: [1, 1.5, '2', ~]\nc: {d: true}\n"
        fast = load_yaml_text(text)
        monkeypatch.setattr(yaml_loader, "_parser", yaml_loader._PyParser)
        pure = load_yaml_text(text)
        assert pure.root == fast.root
