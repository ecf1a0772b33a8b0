"""The stack's configuration, read from the environment in one place.

template.yaml sets these variables on every function (Globals); a template test checks that the
two lists agree, so a variable cannot be read here and forgotten there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class EndpointKind(StrEnum):
    SERVERLESS = "serverless"
    INSTANCE = "instance"


class Traffic(StrEnum):
    """How a blue/green update shifts an instance endpoint's traffic to the new fleet."""

    ALL_AT_ONCE = "ALL_AT_ONCE"
    CANARY = "CANARY"


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete or malformed (a deployment problem)."""


ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    "DATA_BUCKET",
    "RUNS_TABLE",
    "TOPIC_ARN",
    "JOB_PREFIX",
    "SAGEMAKER_ROLE_ARN",
    "XGBOOST_VERSION",
    "XGBOOST_IMAGE_URI",
    "TRAINING_INSTANCE_TYPE",
    "TRANSFORM_INSTANCE_TYPE",
    "TRAINING_INSTANCE_COUNT",
    "TRANSFORM_INSTANCE_COUNT",
    "ENDPOINT_KIND",
    "SERVERLESS_MEMORY_MB",
    "SERVERLESS_MAX_CONCURRENCY",
    "ENDPOINT_INSTANCE_TYPE",
    "ENDPOINT_INSTANCE_COUNT",
    "GATE_THRESHOLD",
    "DEPLOYMENT_TRAFFIC",
    "CANARY_PERCENT",
    "BAKE_SECONDS",
    "IDLE_ENDPOINT_HOURS",
)


@dataclass(frozen=True)
class Settings:
    data_bucket: str
    runs_table: str
    topic_arn: str
    job_prefix: str
    sagemaker_role_arn: str
    xgboost_version: str
    xgboost_image_uri: str
    training_instance_type: str
    transform_instance_type: str
    training_instance_count: int
    transform_instance_count: int
    endpoint_kind: EndpointKind
    serverless_memory_mb: int
    serverless_max_concurrency: int
    endpoint_instance_type: str
    endpoint_instance_count: int
    gate_threshold: float | None
    deployment_traffic: Traffic
    canary_percent: int
    bake_seconds: int
    idle_endpoint_hours: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [name for name in ENVIRONMENT_VARIABLES if name not in env]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        try:
            threshold = env["GATE_THRESHOLD"].strip()
            return cls(
                data_bucket=env["DATA_BUCKET"],
                runs_table=env["RUNS_TABLE"],
                topic_arn=env["TOPIC_ARN"],
                job_prefix=env["JOB_PREFIX"],
                sagemaker_role_arn=env["SAGEMAKER_ROLE_ARN"],
                xgboost_version=env["XGBOOST_VERSION"],
                xgboost_image_uri=env["XGBOOST_IMAGE_URI"],
                training_instance_type=env["TRAINING_INSTANCE_TYPE"],
                transform_instance_type=env["TRANSFORM_INSTANCE_TYPE"],
                training_instance_count=int(env["TRAINING_INSTANCE_COUNT"]),
                transform_instance_count=int(env["TRANSFORM_INSTANCE_COUNT"]),
                endpoint_kind=EndpointKind(env["ENDPOINT_KIND"]),
                serverless_memory_mb=int(env["SERVERLESS_MEMORY_MB"]),
                serverless_max_concurrency=int(env["SERVERLESS_MAX_CONCURRENCY"]),
                endpoint_instance_type=env["ENDPOINT_INSTANCE_TYPE"],
                endpoint_instance_count=int(env["ENDPOINT_INSTANCE_COUNT"]),
                gate_threshold=float(threshold) if threshold else None,
                deployment_traffic=Traffic(env["DEPLOYMENT_TRAFFIC"]),
                canary_percent=int(env["CANARY_PERCENT"]),
                bake_seconds=int(env["BAKE_SECONDS"]),
                idle_endpoint_hours=float(env["IDLE_ENDPOINT_HOURS"]),
            )
        except ValueError as error:
            raise ConfigurationError(f"malformed environment: {error}") from error

    def fingerprint(self) -> str:
        """The settings that change what a training run produces, for deterministic run ids."""
        parts = [self.xgboost_image_uri, self.training_instance_type, self.transform_instance_type]
        # Counts join only when set, so the run ids of one-instance stacks stay as they were.
        if (self.training_instance_count, self.transform_instance_count) != (1, 1):
            parts += [str(self.training_instance_count), str(self.transform_instance_count)]
        return "|".join(parts)
