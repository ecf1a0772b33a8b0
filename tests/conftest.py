"""Settings every test process needs before the Lambda code is imported.

Powertools reads its service name and metrics namespace when the layer's observability module is
first imported, as Lambda would from the template's Globals.
"""

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "xgbpipe")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "XGBoostPipeline")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    yield
    from pipeline_common.observability import metrics

    metrics.clear_metrics()
