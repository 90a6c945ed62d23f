"""The table a soak run prints: requests by endpoint and status, latency percentiles, invariants."""

from __future__ import annotations

from collections import defaultdict

from .client import Recorder
from .invariants import Check


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation): a value that was actually measured."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


#: The writes that carry the conversation, whole (PUT, PATCH) or as the delta form (the save points, the append).
SAVE_POINTS = (
    "PUT ",
    "PATCH ",
    "spawned-tasks/",
    "POST /contracts/{id}/supervisor/questions/",
    "phase/",
    "conversation/",
)


def save_point_bytes(recorder: Recorder) -> list[str]:
    """Bytes sent per save point, by endpoint: with the delta form they stay small however long the history."""
    rows = sorted(label for label in recorder.sent if any(mark in label for mark in SAVE_POINTS))
    if not rows:
        return []
    lines = ["", "bytes sent per save point:", f"  {'endpoint':<60} {'requests':>8} {'median B':>9} {'max B':>9}"]
    for label in rows:
        sizes = recorder.sent[label]
        lines.append(f"  {label:<60} {len(sizes):>8} {percentile(sizes, 0.5):>9.0f} {max(sizes):>9}")
    return lines


def render(recorder: Recorder, checks: list[Check], *, title: str, seconds: float) -> str:
    by_endpoint: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for (endpoint, status), samples in recorder.samples.items():
        by_endpoint[endpoint][status] = samples
    lines = [title, ""]
    header = f"{'endpoint':<62} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}  statuses"
    lines += [header, "-" * len(header)]
    for endpoint in sorted(by_endpoint, key=lambda e: (e.split(" ", 1)[1], e)):
        statuses = by_endpoint[endpoint]
        every = [s for samples in statuses.values() for s in samples]
        errors = sum(len(v) for status, v in statuses.items() if status >= 400 or status == 0)
        counts = " ".join(f"{status}:{len(v)}" for status, v in sorted(statuses.items()))
        lines.append(
            f"{endpoint:<62} {len(every):>8} {errors:>6} {percentile(every, 0.5) * 1000:>8.1f} "
            f"{percentile(every, 0.99) * 1000:>8.1f}  {counts}"
        )
    every = [s for samples in recorder.samples.values() for s in samples]
    if every:
        lines.append("-" * len(header))
        errors = recorder.count(lambda s: s >= 400 or s == 0)
        lines.append(
            f"{'all':<62} {len(every):>8} {errors:>6} {percentile(every, 0.5) * 1000:>8.1f} "
            f"{percentile(every, 0.99) * 1000:>8.1f}  {len(every) / seconds:.0f} requests/s"
        )
    lines += save_point_bytes(recorder)
    lines += ["", "invariants:"]
    for check in checks:
        lines.append(f"  [{'held' if check.held else 'BROKEN'}] {check.name}: {check.detail}")
    return "\n".join(lines)
