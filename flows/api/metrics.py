"""The service's Prometheus metrics, in a registry of its own (never the process-global one,
so that two apps in one process do not share counts)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Around the 10 ms target for one decision, up to a full batch.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "riskctl_api_requests", "HTTP requests by route and status", ["route", "status"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "riskctl_api_request_seconds", "Time to answer, by route", ["route"],
            buckets=_BUCKETS, registry=registry,
        )  # fmt: skip
        self.decisions = Counter(
            "riskctl_api_decisions", "Decisions by outcome", ["outcome"], registry=registry
        )
        self.model = Gauge(
            "riskctl_api_model_info", "The model answering (value 1)", ["version", "kind"],
            registry=registry,
        )  # fmt: skip
        self.reloads = Counter(
            "riskctl_api_model_reloads", "Model reloads by result", ["result"], registry=registry
        )
        self.audit_pending = Gauge(
            "riskctl_api_audit_pending", "Decisions waiting for the audit table", registry=registry
        )
        self.audit_written = Gauge(
            "riskctl_api_audit_written", "Decisions written to the audit table", registry=registry
        )
        self.audit_failures = Gauge(
            "riskctl_api_audit_failures", "Failed audit writes (each retried)", registry=registry
        )

    def set_model(self, version: str, kind: str) -> None:
        self.model.clear()
        self.model.labels(version, kind).set(1)

    def render(self, audit: Callable[[], tuple[int, int, int]]) -> bytes:
        pending, written, failures = audit()
        self.audit_pending.set(pending)
        self.audit_written.set(written)
        self.audit_failures.set(failures)
        return generate_latest(self.registry)
