"""Issue 10, item 5: every numeric header field is range-checked, the parser always progresses,
and grammar-aware fuzzing of real archives finds no input that hangs, bloats or crashes it."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from sagactl.actions.build_from_tar.tarcheck import ParserStuck, StagingLimits, TarParser
from tarfuzz import (
    CORPUS,
    SEEDS,
    Entry,
    Mutant,
    check,
    join,
    mutated,
    run_one,
    save_crash,
    seal,
    split,
)

EXAMPLES = int(os.environ.get("SAGACTL_FUZZ_EXAMPLES", "300"))
"""Inputs per fuzz run: bounded for CI; raise it for a long local campaign."""
CAMPAIGN_TIMEOUT = 60 + EXAMPLES // 10
"""pytest-timeout for a fuzz test, scaled with EXAMPLES (about 50 inputs a second)."""


def _one_file(fmt: int = tarfile.USTAR_FORMAT, pax: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        info = tarfile.TarInfo("app.py")
        data = b"print('hi')\n" * 100
        info.size, info.mtime = len(data), 1_700_000_000
        info.pax_headers = pax or {}
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _field(start: int, raw: bytes) -> Callable[[list[Entry]], None]:
    def apply(entries: list[Entry]) -> None:
        header = entries[-1].header
        header[start : start + len(raw)] = raw
        seal(header)

    return apply


def _pax(record: bytes) -> Callable[[list[Entry]], None]:
    """Replaces the pax header's records with `record` (its length prefix computed)."""

    def apply(entries: list[Entry]) -> None:
        body = b" " + record + b"\n"
        length = len(body) + len(str(len(body) + 2))
        data = str(length).encode() + body
        entries[0] = Entry(entries[0].header, data)
        entries[0].header[124:136] = b"%011o\x00" % len(data)
        seal(entries[0].header)

    return apply


def _b256(value: int, width: int) -> bytes:
    return value.to_bytes(width, "big", signed=True)


CASES: dict[str, tuple[Callable[[list[Entry]], None], str]] = {
    "size base-256 -512": (_field(124, _b256(-512, 12)), "member 'app.py': negative size"),
    "size octal -0000001000": (_field(124, b"-0000001000\0"), "member 'app.py': bad size field"),
    "size with a plus sign": (_field(124, b"+0000001000\0"), "bad size field"),
    "size with an underscore": (_field(124, b"0000_001000\0"), "bad size field"),
    "size in Arabic-Indic digits": (_field(124, "\u0661\u0662".encode() + b"\0"), "bad size"),
    "size of 8 and 9": (_field(124, b"00000000089\0"), "bad size field"),
    "size base-256 bad lead": (_field(124, b"\xc0" + bytes(11)), "bad size field"),
    "mode negative": (_field(100, _b256(-1, 8)), "negative mode"),
    "mode past 7 digits": (_field(100, b"\x80" + (1 << 40).to_bytes(7, "big")), "mode"),
    "uid negative": (_field(108, _b256(-5, 8)), "negative uid"),
    "gid past 32 bits": (_field(116, b"\x80" + (1 << 40).to_bytes(7, "big")), "gid"),
    "mtime not octal": (_field(136, b"1700000000x\0"), "bad mtime field"),
    "device major negative": (_field(329, b"-000001\0"), "bad device major field"),
    "pax size -512": (_pax(b"size=-512"), "member 'app.py': pax size '-512' is not a number"),
    "pax size +5": (_pax(b"size=+5"), "pax size '+5' is not a number"),
    "pax size 1_0": (_pax(b"size=1_0"), "pax size '1_0'"),
    "pax size with a space": (_pax(b"size= 12"), "pax size ' 12'"),
    "pax size past 2**63": (_pax(b"size=99999999999999999999"), "is not a number from 0"),
    "pax mtime not a time": (_pax(b"mtime=1e9"), "pax mtime '1e9' is not a time"),
    "pax uid negative": (_pax(b"uid=-1"), "pax uid '-1' is not a number"),
}


class TestNumericFields:
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_out_of_range_or_malformed_is_refused(self, case: str) -> None:
        """Each malformed number is refused with one line naming the field, within the CPU
        budget: the negative sizes spun the old parser forever."""
        mutate, expected = CASES[case]
        entries = split(_one_file(tarfile.PAX_FORMAT, {"comment": "x"}))
        mutate(entries)
        outcome = run_one(join(entries))
        assert outcome.error is not None and expected in outcome.error, outcome.error
        check(outcome)

    def test_negative_mtime_before_1970_is_kept(self) -> None:
        """A base-256 negative mtime (GNU tar's form for files before 1970) is a valid time."""
        entries = split(_one_file())
        _field(136, _b256(-86400, 12))(entries)
        outcome = run_one(join(entries))
        assert outcome.error is None
        assert [m.mtime for m in outcome.members] == [-86400]

    def test_pax_fraction_times_round_down(self) -> None:
        """pax times with fractions keep whole seconds, rounding down before 1970 too."""
        for value, seconds in (("1700000000.75", 1_700_000_000), ("-0.5", -1), ("-2.0", -2)):
            entries = split(_one_file(tarfile.PAX_FORMAT, {"comment": "x"}))
            _pax(f"mtime={value}".encode())(entries)
            outcome = run_one(join(entries))
            assert [m.mtime for m in outcome.members] == [seconds], outcome.error

    @pytest.mark.parametrize("length", [b"0", b"-5", b"+25", b"999999", b"5"])
    def test_corrupt_pax_record_lengths(self, length: bytes) -> None:
        """A pax record length of zero, negative, signed, past the data or too short to hold
        the record is refused (a zero length used to be a loop that never advanced)."""
        entries = split(_one_file(tarfile.PAX_FORMAT, {"comment": "x"}))
        data = length + b" comment=x\n"
        entries[0] = Entry(entries[0].header, data)
        entries[0].header[124:136] = b"%011o\x00" % len(data)
        seal(entries[0].header)
        outcome = run_one(join(entries))
        assert outcome.error is not None and "corrupt pax record" in outcome.error


class TestProgressInvariant:
    def test_a_negative_size_can_never_reach_the_data_loop(self) -> None:
        """The guard behind the invariant: a negative size reaching the data state raises
        instead of looping (the decoder refuses it first; this proves the second line)."""
        parser = TarParser(StagingLimits())
        with pytest.raises(ParserStuck):
            parser._start_data(-512)

    @pytest.mark.timeout(CAMPAIGN_TIMEOUT)
    @given(st.binary(max_size=4096), st.integers(1, 700))
    @settings(max_examples=EXAMPLES, deadline=None)
    def test_any_bytes_in_any_chunks_end(self, data: bytes, chunk: int) -> None:
        """Arbitrary bytes fed in arbitrary pieces end in a verdict within the budget."""
        check(run_one(data, chunk))


class TestFuzz:
    @pytest.mark.parametrize("name", SEEDS)
    def test_seeds_are_what_they_claim(self, name: str) -> None:
        """Every real archive the fuzzer starts from is accepted whole, with the members
        Python's tarfile lists, except the sparse ones, which are refused as sparse: the
        mutations start from the parser's happy path."""
        from tarfuzz import seed

        outcome = run_one(seed(name))
        check(outcome)
        if "sparse" in name:
            assert outcome.error is not None and "sparse" in outcome.error
        else:
            assert outcome.error is None, outcome.error
            with tarfile.open(fileobj=io.BytesIO(seed(name))) as archive:
                theirs = {os.path.normpath(n) for n in archive.getnames()} - {"."}
            assert {m.name for m in outcome.members} == theirs
            assert "app.py" in theirs

    @pytest.mark.timeout(CAMPAIGN_TIMEOUT)
    @given(mutated(), st.sampled_from([1, 100, 512, 513, 4096, 1 << 20]))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def test_mutated_archives(self, mutant: Mutant, chunk: int) -> None:
        """Mutated real archives end in a clean archive or one InputError line, within the
        CPU and memory budgets; a failing input is kept in the corpus."""
        try:
            check(run_one(mutant.data, chunk))
        except BaseException:
            if current_build_context().is_final:
                save_crash(mutant.data)
            raise


@pytest.mark.parametrize(
    "path", sorted(CORPUS.glob("*.tar")), ids=lambda p: p.name if isinstance(p, Path) else p
)
def test_corpus_replays(path: Path) -> None:
    """Every input that ever hung or crashed the parser stays a clean verdict."""
    outcome = run_one(path.read_bytes(), 512)
    check(outcome)
    if path.name.startswith("hang-"):
        assert outcome.error is not None
