"""The shared metric vocabulary (runtimes/core/metrics.py): names, dimensions, object age."""

from __future__ import annotations

import time

from runtimes.core.engine import Counters
from runtimes.core.metrics import (
    METRICS,
    ObjectAge,
    dimensions,
    invocation_values,
    object_age,
)


def test_dimensions_name_project_stack_and_pipeline():
    env = {"HEADWATER_PULUMI_PROJECT": "web", "HEADWATER_STACK": "prod"}
    assert dimensions("orders", env) == {"project": "web", "stack": "prod", "pipeline": "orders"}
    assert dimensions("orders", {}) == {"project": "unset", "stack": "unset",
                                        "pipeline": "orders"}


def test_object_age_reads_the_clouds_time_formats():
    now = 1714564803.112 + 60
    assert abs(object_age("2024-05-01T12:00:03.112Z", now) - 60) < 1e-3  # S3 eventTime
    assert abs(object_age("2024-05-01T12:00:03.1120000Z", now) - 60) < 1e-3  # Event Grid, 7 digits
    assert abs(object_age("2024-05-01T12:00:03.112+00:00", now) - 60) < 1e-3  # GCS timeCreated
    assert object_age("", now) is None and object_age("yesterday", now) is None
    assert object_age(now + 5, now) == 0.0  # a clock ahead of ours is never a negative age


def test_invocation_values_carry_the_vocabulary_and_the_oldest_age():
    c = Counters(received=5, written=3, dropped=1, dead_lettered=1, sink_seconds=0.1234567)
    ages = ObjectAge()
    ages.saw(time.time() - 30)
    ages.saw(time.time() - 90)
    ages.saw("not a time")
    values = invocation_values(c, {"Objects": 2}, time.perf_counter(), ages=ages)
    assert set(METRICS) <= set(values)
    assert (values["Received"], values["Written"], values["DeadLettered"]) == (5, 3, 1)
    assert values["SinkSeconds"] == 0.123457
    assert 89 <= values["ObjectAgeSeconds"] <= 91
    assert "ObjectAgeSeconds" not in invocation_values(c, {}, time.perf_counter())
