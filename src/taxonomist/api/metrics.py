"""Prometheus metrics: requests by route and status, latency, predictions by model and class,
the distribution of the predicted probability, a binary model's predicted positive rate (its
expected click-through rate), and each model's monitoring (drift, live quality, retraining)
read from the metadata database.

``taxonomist serve --workers N`` runs Prometheus's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
set before the workers start): every process writes its samples to files there and
``/metrics``, whichever process answers, adds them up. Separate API processes (a cluster) are
each a target of their own instead."""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
# The positive-rate gauge is the mean over this many of a process's latest records.
POSITIVE_WINDOW = 1000


class Metrics:
    """The service's metrics in their own registry (one per app, so tests can build many)."""

    def __init__(self, *, class_labels: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.class_labels = class_labels
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.requests = Counter(
            "taxonomist_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taxonomist_request_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # The class is a label only when asked (TAXONOMIST_METRICS_CLASS_LABELS): class names
        # can be confidential, and a thousand-class model makes a thousand series.
        self.predictions = Counter(
            "taxonomist_predictions_total",
            "Predicted records by model (and predicted class, when class labels are on).",
            ["model", "label"] if class_labels else ["model"],
            registry=self.registry,
        )
        self.probability = Histogram(
            "taxonomist_predicted_probability",
            "Probability of the predicted class.",
            ["model"],
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        # A binary model's positive class is its second (clicked, fraud, churned). The gauge
        # is for a glance; the counter adds up across processes and time windows:
        # rate(..._probability_total[5m]) / rate(taxonomist_predictions_total[5m]).
        self.positive_rate = Gauge(
            "taxonomist_predicted_positive_rate",
            f"A binary model's mean predicted probability of its positive class over the last "
            f"{POSITIVE_WINDOW} records this process predicted (the expected click-through rate).",
            ["model"],
            registry=self.registry,
            multiprocess_mode="liveall",  # each live process's own window, by pid
        )
        self.positive_sum = Counter(
            "taxonomist_predicted_positive_probability",
            "Sum of a binary model's predicted probabilities of its positive class; divided by "
            "taxonomist_predictions_total, the predicted positive rate.",
            ["model"],
            registry=self.registry,
        )
        self._recent: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def watch(self, db: Any) -> None:
        """Export the monitoring gauges of the models in ``db`` (the metadata database)."""
        self._monitor = MonitorCollector(db)
        self.registry.register(self._monitor)

    def exposed(self) -> CollectorRegistry:
        """What ``/metrics`` shows: this registry, or in multiprocess mode every process's
        samples added up (and the database's monitoring gauges once)."""
        if not self.multiprocess:
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        monitor = getattr(self, "_monitor", None)
        if monitor is not None:
            registry.register(monitor)
        return registry

    def close(self) -> None:
        """This process's live gauges leave the multiprocess files (it is stopping)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def observe_predictions(self, model: str, labels: list[str], proba: np.ndarray) -> None:
        """Count the records of one request: ``labels`` predicted, ``proba`` the class
        probabilities (a row per record, a column per class, in the model's class order)."""
        if self.class_labels:
            for label, n in collections.Counter(labels).items():
                self.predictions.labels(model, label).inc(n)
        else:
            self.predictions.labels(model).inc(len(labels))
        hist = self.probability.labels(model)
        for p in proba.max(axis=1):
            hist.observe(float(p))
        if proba.shape[1] == 2 and len(proba):
            positive = proba[:, 1].astype(np.float64)
            self.positive_sum.labels(model).inc(float(positive.sum()))
            with self._lock:
                recent = self._recent.setdefault(model, collections.deque(maxlen=POSITIVE_WINDOW))
                recent.extend(positive[-POSITIVE_WINDOW:].tolist())
                self.positive_rate.labels(model).set(sum(recent) / len(recent))


class MonitorCollector(Collector):
    """Gauges read from the database when scraped, so that every process of the service (and
    a restarted one) reports the same: the newest drift report's score and verdict, live
    quality over the last week, and the newest retrain's scores and time. Read at most every
    ``ttl`` seconds."""

    QUALITY_DAYS = 7.0

    def __init__(self, db: Any, ttl: float = 10.0) -> None:
        self.db, self.ttl = db, ttl
        self._cached: tuple[float, list[GaugeMetricFamily]] = (0.0, [])

    def collect(self) -> Any:
        at, families = self._cached
        if time.monotonic() - at > self.ttl:
            try:
                families = self._read()
            except Exception:  # a database hiccup must not fail the scrape of the rest
                families = []
            self._cached = (time.monotonic(), families)
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        from datetime import UTC, datetime, timedelta

        from taxonomist.monitor.quality import live_quality, models_with_feedback
        from taxonomist.monitor.reports import VERDICT_LEVEL, latest_reports
        from taxonomist.monitor.retrain import latest_retrains

        score = GaugeMetricFamily(
            "taxonomist_drift_score",
            "The newest drift report's score (its strongest signal over its drift threshold).",
            labels=["model"],
        )
        verdict = GaugeMetricFamily(
            "taxonomist_drift_verdict",
            "The newest drift report's verdict: 0 ok, 1 warning, 2 drift.",
            labels=["model"],
        )
        quality = GaugeMetricFamily(
            "taxonomist_live_quality",
            "Accuracy and macro-F1 of the last week's predictions that have feedback.",
            labels=["model", "metric"],
        )
        feedback = GaugeMetricFamily(
            "taxonomist_live_feedback",
            "Predictions of the last week that have feedback.",
            labels=["model"],
        )
        retrain = GaugeMetricFamily(
            "taxonomist_retrain_score",
            "The newest evaluated retrain's scores on its holdout, by role.",
            labels=["model", "role"],
        )
        last = GaugeMetricFamily(
            "taxonomist_last_retrain_timestamp_seconds",
            "When the newest retrain ended (Unix time), whatever its outcome.",
            labels=["model"],
        )
        for model, report in latest_reports(self.db).items():
            score.add_metric([model], report["score"])
            verdict.add_metric([model], VERDICT_LEVEL[report["verdict"]])
        since = datetime.now(UTC) - timedelta(days=self.QUALITY_DAYS)
        for model in models_with_feedback(self.db, since):
            q = live_quality(self.db, model, since=since)
            feedback.add_metric([model], q["n"])
            for metric in ("accuracy", "f1_macro"):
                if q[metric] is not None:
                    quality.add_metric([model, metric], q[metric])
        for model, entry in latest_retrains(self.db).items():
            if entry["finished_at"]:
                ended = datetime.fromisoformat(entry["finished_at"]).timestamp()
                last.add_metric([model], ended)
            evaluation = entry.get("evaluation")
            if evaluation:
                for role in ("champion", "challenger"):
                    retrain.add_metric([model, role], evaluation[role]["score"])
        return [score, verdict, quality, feedback, retrain, last]


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task like BaseHTTPMiddleware: ~0.3 ms less)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            template = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status[0])).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)


def route_template(scope: dict[str, Any]) -> str:
    """``/api/v1/jobs/{job_id}`` for ``/api/v1/jobs/7``: bounded label values.

    The matched route's path lacks the prefixes of the routers that include it, which are the
    leading segments of the request path (our parameters never span segments).
    """
    route = getattr(scope.get("route"), "path", None)
    if route is None:
        return "unmatched"
    segments = scope["path"].rstrip("/").split("/")
    own = route.rstrip("/").count("/")
    return "/".join(segments[: len(segments) - own]) + route
