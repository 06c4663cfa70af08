"""What a run reports: per-OP metrics (summed over chunks and workers) and the run's report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dj_ops.ops.base import OP, Deduplicator, Filter


@dataclass
class OpMetrics:
    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    changed: int = 0
    errors: int = 0

    def add(self, other: "OpMetrics") -> None:
        self.seconds += other.seconds
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.changed += other.changed
        self.errors += other.errors


@dataclass
class RunReport:
    """What a run did: counts, per-OP rows and time, where outputs, bad rows and traces went."""

    recipe: str
    rows_in: int = 0
    rows_valid: int = 0
    rows_out: int = 0
    bad_rows: int = 0
    seconds: float = 0.0
    ops: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    stats_file: str | None = None
    bad_rows_file: str | None = None
    trace_dir: str | None = None
    dedup: dict[str, Any] = field(default_factory=dict)
    #: how the OPs ran: steps (fused groups, their order and shared intermediates), devices
    plan: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def table(self) -> str:
        lines = [f"{'#':>3}  {'op':<45} {'rows left':>10} {'removed':>9} {'changed':>8} {'errors':>6} {'cpu s':>8}"]
        for i, o in enumerate(self.ops):
            lines.append(
                f"{i:>3}  {o['name']:<45} {o['rows_out']:>10} {o['rows_in'] - o['rows_out']:>9} "
                f"{o['changed']:>8} {o['errors']:>6} {o['cpu_seconds']:>8.2f}"
            )
        return "\n".join(lines)


def kind_of(op: OP) -> str:
    return "filter" if isinstance(op, Filter) else "deduplicator" if isinstance(op, Deduplicator) else "mapper"


def op_row(op: OP, rows_in: int, rows_out: int, metrics: OpMetrics) -> dict[str, Any]:
    """One OP's line of a report."""
    return {"name": op.name, "kind": kind_of(op), "rows_in": int(rows_in), "rows_out": int(rows_out),
            "changed": metrics.changed, "errors": metrics.errors, "cpu_seconds": round(metrics.seconds, 3)}
