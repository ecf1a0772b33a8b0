"""SageMaker state-change events on the default EventBridge bus, in AWS's shapes.

Delivery is best effort, as on AWS: a background thread puts events in order, and an unreachable
events endpoint is logged, never allowed to fail a job or slow a request.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

logger = logging.getLogger(__name__)

SOURCE = "aws.sagemaker"
TRAINING_JOB_STATE_CHANGE = "SageMaker Training Job State Change"
TRANSFORM_JOB_STATE_CHANGE = "SageMaker Transform Job State Change"
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"

_TRAINING_FIELDS = (
    "TrainingJobName",
    "TrainingJobArn",
    "TrainingJobStatus",
    "SecondaryStatus",
    "FailureReason",
    "HyperParameters",
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "ModelArtifacts",
    "FinalMetricDataList",
    "SecondaryStatusTransitions",
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "LastModifiedTime",
)
_TRANSFORM_FIELDS = (
    "TransformJobName",
    "TransformJobArn",
    "TransformJobStatus",
    "FailureReason",
    "ModelName",
    "MaxConcurrentTransforms",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "TransformResources",
    "DataProcessing",
    "CreationTime",
    "TransformStartTime",
    "TransformEndTime",
    "LastModifiedTime",
)


def epoch_millis(value: Any) -> Any:
    """Events carry times as epoch milliseconds; nested records are converted too."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: epoch_millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [epoch_millis(item) for item in value]
    return value


def event_status(status: str) -> str:
    """`InService` -> `IN_SERVICE`: endpoint events spell statuses in upper snake case."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", status).upper()


def _tag_map(tags: list[dict[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags}


def training_job_detail(job: dict[str, Any], tags: list[dict[str, str]]) -> dict[str, Any]:
    detail = {field: job[field] for field in _TRAINING_FIELDS if field in job}
    detail["Tags"] = _tag_map(tags)
    converted: dict[str, Any] = epoch_millis(detail)
    return converted


def transform_job_detail(job: dict[str, Any], tags: list[dict[str, str]]) -> dict[str, Any]:
    detail = {field: job[field] for field in _TRANSFORM_FIELDS if field in job}
    detail["Tags"] = _tag_map(tags)
    converted: dict[str, Any] = epoch_millis(detail)
    return converted


def endpoint_detail(endpoint: dict[str, Any], tags: list[dict[str, str]]) -> dict[str, Any]:
    variants = [
        {
            "VariantName": variant["VariantName"],
            "DesiredWeight": variant.get("DesiredWeight", 1.0),
            "DesiredInstanceCount": variant.get("DesiredInstanceCount", 1),
        }
        for variant in endpoint.get("ProductionVariants", [])
    ]
    detail: dict[str, Any] = {
        "EndpointName": endpoint["EndpointName"],
        "EndpointArn": endpoint["EndpointArn"],
        "EndpointConfigName": endpoint["EndpointConfigName"],
        "ProductionVariants": variants,
        "EndpointStatus": event_status(endpoint["EndpointStatus"]),
        "CreationTime": endpoint["CreationTime"].timestamp() * 1000,
        "LastModifiedTime": endpoint["LastModifiedTime"].timestamp() * 1000,
        "Tags": _tag_map(tags),
    }
    if endpoint.get("FailureReason"):
        detail["FailureReason"] = endpoint["FailureReason"]
    return detail


class EventPublisher:
    """Puts events on the default bus from one background thread, in the order they happened."""

    def __init__(self, endpoint_url: str | None, region: str) -> None:
        self._client = boto3.client(
            "events",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                connect_timeout=2, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"}
            ),
        )
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sm-events", daemon=True)
        self._thread.start()

    def publish(self, detail_type: str, resource_arn: str, detail: dict[str, Any]) -> None:
        self._queue.put(
            {
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "Resources": [resource_arn],
                "Time": datetime.now(UTC),
                "EventBusName": "default",
            }
        )

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by `timeout`), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            try:
                response = self._client.put_events(Entries=[entry])
                if response.get("FailedEntryCount"):
                    logger.warning("EventBridge rejected %s: %s", entry["DetailType"], response)
            except Exception as error:
                logger.warning(
                    "could not put %s on EventBridge (%s); going on", entry["DetailType"], error
                )
