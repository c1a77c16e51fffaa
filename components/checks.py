"""Plan-time checks every cloud runs on a stack, with the cloud's own rules plugged in.

A cloud supplies a :class:`CloudRules`: where a pipeline reads and writes
(:meth:`~CloudRules.locations`) and its own per-pipeline refusals
(:meth:`~CloudRules.check_pipeline`). The loop, the source overlaps, the rings, unknown
``lookups`` and a missing ``sink.columns`` where the warehouse has a fixed schema are
checked here, once, for every cloud.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from headwater.spec import PipelineSpec, StackConfig

from .common import (
    Location,
    PlanError,
    check_no_cycles,
    check_no_recursion,
    check_prefix_overlaps,
)

__all__ = ["CloudRules", "check_lookups", "check_sink_columns", "check_stack"]


class CloudRules(Protocol):
    cloud: str
    # the warehouse needs sink.columns (Glue/Parquet, BigQuery, Data Explorer): the why
    fixed_schema: str | None

    def locations(self, spec: PipelineSpec) -> tuple[Location, list[Location]]: ...

    def check_pipeline(self, spec: PipelineSpec, stack: StackConfig) -> None: ...


def check_lookups(spec: PipelineSpec) -> None:
    """``lookups`` may only name tables that a step of the chain uses."""
    used = spec.lookup_keys()
    unknown = sorted(set(spec.lookups) - set(used))
    if unknown:
        raise PlanError(f"pipeline {spec.name!r}: lookups names {', '.join(unknown)}, which no "
                        f"transform uses; tables used: {', '.join(used) or 'none'}.")


def check_sink_columns(spec: PipelineSpec, why: str) -> None:
    """A warehouse with a fixed schema needs ``sink.columns``."""
    if not spec.sink.columns:
        raise PlanError(
            f"pipeline {spec.name!r}: sink.columns is empty, but {why}. List the columns, "
            "e.g. sink: {table: orders, columns: {order_id: string, value_cents: bigint}}.")


def check_stack(stack: StackConfig, rules: CloudRules) -> None:
    """Every pipeline's checks (neutral, then the cloud's), then sources that overlap in
    one bucket and rings of pipelines. Raises :class:`PlanError` on the first refusal."""
    by_bucket: dict[str, dict[str, Location]] = defaultdict(dict)
    for spec in stack.pipelines:
        rules.check_pipeline(spec, stack)
        source, outputs = rules.locations(spec)
        check_no_recursion(spec.name, source, outputs)
        check_lookups(spec)
        if rules.fixed_schema:
            check_sink_columns(spec, rules.fixed_schema)
        by_bucket[source.bucket][spec.name] = source
    for sources in by_bucket.values():
        check_prefix_overlaps(sources)
    check_no_cycles({spec.name: rules.locations(spec) for spec in stack.pipelines})
