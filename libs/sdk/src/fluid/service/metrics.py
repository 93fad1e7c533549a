"""OpenTelemetry metrics exposed for Prometheus scraping, one endpoint per process.

``FLUID_METRICS_PORT`` (0: off) opens ``/metrics`` on the service's host. Services record
through the OpenTelemetry API (``meter(...)``); without a configured provider the calls
cost nothing, so domain code can record unconditionally.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics

logger = logging.getLogger("fluid.metrics")


def configure_metrics(service_name: str, host: str, port: int) -> None:
    """Install a Prometheus-exporting meter provider and serve /metrics on ``port``."""
    if not port:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from prometheus_client import start_http_server

    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return  # one provider (and one endpoint) per process
    start_http_server(port, addr=host)
    provider = MeterProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        metric_readers=[PrometheusMetricReader()],
    )
    metrics.set_meter_provider(provider)
    logger.info("metrics for Prometheus on http://%s:%d/metrics", host, port)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)
