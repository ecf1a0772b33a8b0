"""The endpoint metrics SageMaker publishes to CloudWatch (namespace AWS/SageMaker, dimensions
EndpointName and VariantName), counted per invocation and sent every second, so that what reads
them (the idle-endpoint check, alarms) sees the local endpoints as it would see AWS's."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
FLUSH_SECONDS = 1.0


class EndpointMetrics:
    def __init__(self, cloudwatch: Callable[[], Any], interval: float = FLUSH_SECONDS) -> None:
        self._cloudwatch = cloudwatch
        self._interval = interval
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sm-metrics", daemon=True)
        self._thread.start()

    def count(self, endpoint: str, variant: str, metric: str) -> None:
        with self._lock:
            self._counts[(endpoint, variant, metric)] += 1

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        stamp = datetime.now(UTC)
        data = [
            {
                "MetricName": metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": stamp,
                "Value": float(value),
                "Unit": "None",
            }
            for (endpoint, variant, metric), value in counts.items()
        ]
        try:
            for start in range(0, len(data), 1000):
                self._cloudwatch().put_metric_data(
                    Namespace=NAMESPACE, MetricData=data[start : start + 1000]
                )
        except Exception:
            logger.warning("could not publish %d endpoint metrics", len(data), exc_info=True)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()
