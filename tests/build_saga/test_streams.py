"""StreamRegistry: ids, one-time claims, staged paths, cleanup hooks, concurrency."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar.schemas import STREAM_ID
from sagactl.actions.build_from_tar.streams import StreamGone, StreamRegistry


class TestStreamRegistry:
    def test_fresh_ids_match_the_schema(self) -> None:
        """Every registration gets a new random id that receive_tar's schema accepts."""
        registry = StreamRegistry()
        ids = {registry.register(io.BytesIO()) for _ in range(200)}
        assert len(ids) == 200
        assert all(re.match(STREAM_ID["pattern"], i) for i in ids)

    def test_claim_once(self) -> None:
        """The reader is handed out once; a second claim says the stream was consumed."""
        registry = StreamRegistry()
        reader = io.BytesIO(b"x")
        stream_id = registry.register(reader)
        assert registry.claim(stream_id) is reader
        with pytest.raises(StreamGone, match="already read"):
            registry.claim(stream_id)

    def test_unknown_stream(self) -> None:
        """A stream this process never saw (a crash, another host) has no reader."""
        with pytest.raises(StreamGone, match="no live reader"):
            StreamRegistry().claim("abcdefgh")

    def test_empty_registry_is_still_a_registry(self) -> None:
        """len() is 0 for a new registry: callers must test `is None`, never truthiness."""
        assert len(StreamRegistry()) == 0

    def test_staged_path_of_an_unknown_stream_is_not_kept(self, tmp_path: Path) -> None:
        """set_staged for a stream this process never registered adds nothing."""
        registry = StreamRegistry()
        registry.set_staged("abcdefgh", tmp_path / "x.tar")
        assert len(registry) == 0
        assert registry.staged("abcdefgh") is None

    def test_duplicate_id_refused(self) -> None:
        """Registering an id twice is a programming error."""
        registry = StreamRegistry()
        registry.register(io.BytesIO(), stream_id="abcdefgh")
        with pytest.raises(ValueError, match="already registered"):
            registry.register(io.BytesIO(), stream_id="abcdefgh")

    def test_release_runs_hooks_and_forgets(self, tmp_path: Path) -> None:
        """release() runs every hook once with the outcome, then forgets the stream."""
        registry = StreamRegistry()
        stream_id = registry.register(io.BytesIO())
        registry.set_staged(stream_id, tmp_path / "x.tar")
        seen: list[tuple[str, str]] = []
        registry.on_cleanup(stream_id, lambda s, o: seen.append((s, o)))
        assert registry.staged(stream_id) == tmp_path / "x.tar"
        registry.release(stream_id, "compensated")
        registry.release(stream_id, "compensated")
        assert seen == [(stream_id, "compensated")]
        assert stream_id not in registry
        assert registry.staged(stream_id) is None

    def test_failing_hook_does_not_stop_others(self) -> None:
        """One failing hook is reported after the others ran."""
        registry = StreamRegistry()
        stream_id = registry.register(io.BytesIO())
        ran: list[str] = []

        def bad(s: str, o: str) -> None:
            raise OSError("disk gone")

        registry.on_cleanup(stream_id, bad)
        registry.on_cleanup(stream_id, lambda s, o: ran.append(o))
        with pytest.raises(ExceptionGroup):
            registry.release(stream_id, "succeeded")
        assert ran == ["succeeded"]

    def test_many_threads(self) -> None:
        """Many threads registering, claiming and releasing at once lose nothing."""
        registry = StreamRegistry()
        claimed: list[object] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(200):
                reader = object()
                stream_id = registry.register(reader)
                got = registry.claim(stream_id)
                with lock:
                    claimed.append(got is reader)
                registry.release(stream_id, "succeeded")

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert claimed == [True] * 1600
        assert len(registry) == 0
