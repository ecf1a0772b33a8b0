"""Job logs in CloudWatch Logs, where SageMaker puts what each instance of a job prints.

Training hosts write to `/aws/sagemaker/TrainingJobs`, stream `<job>/algo-<n>-<epoch seconds>`;
transform instances to `/aws/sagemaker/TransformJobs`, stream `<job>/<instance id>-<epoch>`
(the transform stream's form is as seen in consoles, not confirmed by AWS's documentation).
Lines are buffered and sent on `flush`. A log that cannot be written is a warning, never a
job failure. As with the endpoint metrics, nothing is sent unless the local SageMaker talks to
local services: the logs of a local job do not belong in a real account.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from typing import Any

from xgbpipe.local.sagemaker import s3io

logger = logging.getLogger(__name__)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


def instance_id(job_name: str, number: int) -> str:
    """An EC2-shaped instance id, stable for a job's n-th transform instance."""
    digest = hashlib.sha256(f"{job_name}/{number}".encode()).hexdigest()
    return f"i-0{digest[:16]}"


class JobLog:
    """One instance's log stream."""

    def __init__(self, spec: dict[str, Any], group: str, stream: str) -> None:
        self.group = group
        self.stream = stream
        self._endpoint_url: str | None = spec.get("s3_endpoint_url")
        self._region: str = spec["region"]
        self._events: list[dict[str, Any]] = []
        self._created = False

    @classmethod
    def training(cls, spec: dict[str, Any], host: str) -> JobLog:
        name = spec["job"]["TrainingJobName"]
        return cls(spec, TRAINING_LOG_GROUP, f"{name}/{host}-{int(time.time())}")

    @classmethod
    def transform(cls, spec: dict[str, Any], number: int) -> JobLog:
        name = spec["job"]["TransformJobName"]
        stream = f"{name}/{instance_id(name, number)}-{int(time.time())}"
        return cls(spec, TRANSFORM_LOG_GROUP, stream)

    def write(self, message: str) -> None:
        logger.info("%s: %s", self.stream, message)
        self._events.append({"timestamp": int(time.time() * 1000), "message": message})

    def flush(self) -> None:
        events, self._events = self._events, []
        if not events or self._endpoint_url is None:
            return
        try:
            client = s3io.aws_client("logs", self._endpoint_url, self._region)
            if not self._created:
                self._create(client)
            client.put_log_events(
                logGroupName=self.group, logStreamName=self.stream, logEvents=events
            )
        except Exception:
            logger.warning(
                "could not write %d lines to the log stream %s",
                len(events),
                self.stream,
                exc_info=True,
            )

    def _create(self, client: Any) -> None:
        for create, args in (
            (client.create_log_group, {"logGroupName": self.group}),
            (client.create_log_stream, {"logGroupName": self.group, "logStreamName": self.stream}),
        ):
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                create(**args)
        self._created = True
