"""Small builders of Prometheus metric families, shared by the modules that export them.

Names follow `polaris_agent_<what>_<unit>[_total]`; see agent/ops/metrics.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.ops.snapshot import SourceSnapshot

PREFIX: Final = "polaris_agent"


def metric_name(what: str) -> str:
    return f"{PREFIX}_{what}"


def counter(what: str, doc: str, value: float) -> Metric:
    # prometheus_client appends `_total` to counter samples; the family name goes without it.
    return CounterMetricFamily(metric_name(what), doc, value=value)


def gauge(what: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(metric_name(what), doc, value=value)


def labelled_counter(
    what: str, doc: str, label: str, values: Mapping[str, int], known: Iterable[str] = ()
) -> Metric:
    """One sample per key of `values`, and one (0) per `known` key not counted yet."""
    family = CounterMetricFamily(metric_name(what), doc, labels=[label])
    for key in sorted({*values, *known}):
        family.add_metric([key], values.get(key, 0))
    return family


def per_source(
    family: CounterMetricFamily | GaugeMetricFamily,
    sources: Iterable[SourceSnapshot],
    value: Callable[[SourceSnapshot], int],
) -> Metric:
    for source in sources:
        family.add_metric([source.name], value(source))
    return family
