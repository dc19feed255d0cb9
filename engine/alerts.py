"""Stuck runs by how long they have been stuck: what `sagactl stats` and the metrics show,
and what an alert rule watches."""

from __future__ import annotations

from collections.abc import Mapping

STUCK_AGES: Mapping[str, float] = {"0s": 0.0, "1h": 3600.0, "1d": 86400.0, "7d": 7 * 86400.0}
"""Age thresholds: a run counts under each one it has been stuck for longer than."""


def stuck_by_age(stuck_since: list[tuple[str, float]], now: float) -> dict[str, dict[str, int]]:
    """Saga -> {threshold label -> its runs stuck for longer}, from (saga, since) pairs."""
    counts: dict[str, dict[str, int]] = {}
    for saga, since in stuck_since:
        ages = counts.setdefault(saga, dict.fromkeys(STUCK_AGES, 0))
        for label, seconds in STUCK_AGES.items():
            if seconds == 0.0 or now - since > seconds:
                ages[label] += 1
    return counts


def stuck_summary(stuck_since: list[tuple[str, float]], now: float) -> dict[str, int]:
    """`stuck_over_1h`, `stuck_over_1d`, `stuck_over_7d` and `oldest_stuck_seconds`."""
    summary = {
        f"stuck_over_{label}": sum(1 for _, since in stuck_since if now - since > seconds)
        for label, seconds in STUCK_AGES.items()
        if seconds
    }
    oldest = min((since for _, since in stuck_since), default=now)
    summary["oldest_stuck_seconds"] = int(max(0.0, now - oldest))
    return summary
