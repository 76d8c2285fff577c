"""Prometheus metrics, on a registry owned by the app (never the global one,
so two apps in one test process do not collide)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_seconds: Histogram
    database_up: Gauge
    info: Info

    @classmethod
    def create(cls, registry: CollectorRegistry, version: str) -> Metrics:
        metrics = cls(
            requests=Counter(
                "visitgate_http_requests",
                "HTTP requests by route and status",
                ["route", "status"],
                registry=registry,
            ),
            request_seconds=Histogram(
                "visitgate_http_request_seconds",
                "HTTP request latency",
                ["route"],
                registry=registry,
            ),
            database_up=Gauge(
                "visitgate_database_up",
                "1 if the last health check reached the database",
                registry=registry,
            ),
            info=Info("visitgate_build", "VisitGate version", registry=registry),
        )
        metrics.info.info({"version": version})
        return metrics
