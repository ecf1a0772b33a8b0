"""Requests for SageMaker's control plane, built as plain dicts from a run and the settings.

They follow the seed's notebook (Estimator.fit, transformer.transform, deploy) with the built-in
XGBoost algorithm's conventions: text/csv, label in column 0, one image for training and serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_common.config import EndpointKind, Settings, Traffic
from pipeline_common.naming import ON_LIVE_TEST_SET, RunRef, job_name, run_prefix
from pipeline_common.storage import s3_uri

CSV = "text/csv"
VARIANT_NAME = "AllTraffic"
TEST_FILE = "test.csv"
TRAINING_VOLUME_GB = 30
MAX_TRAINING_SECONDS = 3600
MAX_PAYLOAD_MB = 6
SHARDED = "ShardedByS3Key"
REPLICATED = "FullyReplicated"


@dataclass(frozen=True)
class ChannelInput:
    """Where a run's snapshot of a channel is: one file, or a folder (key ends in `/`) of parts."""

    key: str
    parts: int

    @classmethod
    def of(cls, run: Mapping[str, Any], ref: RunRef, channel: str) -> ChannelInput:
        recorded = (run.get("channels") or {}).get(channel)
        if recorded:
            return cls(str(recorded["key"]), int(recorded["parts"]))
        return cls(input_key(ref, f"{channel}.csv"), 1)  # runs recorded before parts existed


def instance_count(run: Mapping[str, Any], job: str, parts: int) -> int:
    """Instances for a job: as many as asked, but no more than parts to give them.

    SageMaker hands whole objects to instances, so an instance without a part would sit idle
    (and a training host without data is left out of training).
    """
    requested = int((run.get("instance_counts") or {}).get(job, 1))
    return max(1, min(requested, parts))


def input_key(ref: RunRef, file_name: str) -> str:
    return f"{run_prefix(ref)}/input/{file_name}"


def training_output_prefix(ref: RunRef) -> str:
    return f"{run_prefix(ref)}/training"


def transform_output_prefix(ref: RunRef, on_live_test_set: bool = False) -> str:
    """The folder (with its `/`) of a transform's `.out` objects, one per input object."""
    suffix = ON_LIVE_TEST_SET if on_live_test_set else ""
    return f"{run_prefix(ref)}/transform{suffix}/"


def metrics_key(ref: RunRef) -> str:
    return f"{run_prefix(ref)}/metrics.json"


def tags(ref: RunRef) -> list[dict[str, str]]:
    return [
        {"Key": "xgbpipe:model", "Value": ref.model},
        {"Key": "xgbpipe:run-id", "Value": ref.run_id},
    ]


def _csv_channel(name: str, uri: str, distribution: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": distribution,
            }
        },
        # Without a ContentType the container assumes libsvm (facts sheet, section 2).
        "ContentType": CSV,
        "CompressionType": "None",
    }


def training_job_request(settings: Settings, ref: RunRef, run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's training job; with several instances, XGBoost's distributed engine.

    Each instance then trains on its own share of the train parts (ShardedByS3Key), as the
    built-in algorithm expects; validation is sharded too when every instance gets a part, and
    otherwise copied whole to each (a host without validation data would sit out).
    """
    bucket = settings.data_bucket
    train, validation = ChannelInput.of(run, ref, "train"), ChannelInput.of(run, ref, "validation")
    instances = instance_count(run, "training", train.parts)
    sharded_validation = instances > 1 and validation.parts >= instances
    return {
        "TrainingJobName": job_name(settings.job_prefix, ref),
        "AlgorithmSpecification": {
            "TrainingImage": settings.xgboost_image_uri,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.sagemaker_role_arn,
        "InputDataConfig": [
            _csv_channel(
                "train", s3_uri(bucket, train.key), SHARDED if instances > 1 else REPLICATED
            ),
            _csv_channel(
                "validation",
                s3_uri(bucket, validation.key),
                SHARDED if sharded_validation else REPLICATED,
            ),
        ],
        "OutputDataConfig": {"S3OutputPath": s3_uri(bucket, training_output_prefix(ref))},
        "ResourceConfig": {
            "InstanceType": settings.training_instance_type,
            "InstanceCount": instances,
            "VolumeSizeInGB": TRAINING_VOLUME_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_TRAINING_SECONDS},
        "HyperParameters": dict(run["hyperparameters"]),
        "Tags": tags(ref),
    }


def model_request(
    settings: Settings, ref: RunRef, image: str, model_data_url: str
) -> dict[str, Any]:
    return {
        "ModelName": job_name(settings.job_prefix, ref),
        "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data_url},
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "Tags": tags(ref),
    }


def transform_job_request(
    settings: Settings,
    ref: RunRef,
    run: Mapping[str, Any],
    live_test_set: tuple[RunRef, ChannelInput] | None = None,
) -> dict[str, Any]:
    """The batch transform of the run's test set, or with `live_test_set` of that run's.

    Every test object (one file, or each part) gives one `.out` object; several instances
    share the parts between them.
    """
    name = job_name(settings.job_prefix, ref)
    bucket = settings.data_bucket
    suffix = ON_LIVE_TEST_SET if live_test_set else ""
    test = live_test_set[1] if live_test_set else ChannelInput.of(run, ref, "test")
    return {
        "TransformJobName": name + suffix,
        "ModelName": name,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_uri(bucket, test.key)}
            },
            "ContentType": CSV,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": s3_uri(
                bucket, transform_output_prefix(ref, bool(live_test_set)).rstrip("/")
            ),
            "Accept": CSV,
            "AssembleWith": "Line",
        },
        "TransformResources": {
            "InstanceType": settings.transform_instance_type,
            "InstanceCount": instance_count(run, "transform", test.parts),
        },
        # test.csv keeps its label: hide it from the model, then join the prediction to the row
        # so the evaluation reads label and prediction from one line.
        "DataProcessing": {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$"},
        "Tags": tags(ref),
    }


def endpoint_config_request(settings: Settings, ref: RunRef) -> dict[str, Any]:
    name = job_name(settings.job_prefix, ref)
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": name}
    if settings.endpoint_kind is EndpointKind.SERVERLESS:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant["InstanceType"] = settings.endpoint_instance_type
        variant["InitialInstanceCount"] = settings.endpoint_instance_count
        variant["InitialVariantWeight"] = 1.0
    return {"EndpointConfigName": name, "ProductionVariants": [variant], "Tags": tags(ref)}


# Endpoint metrics that mean the new fleet answers badly (AWS/SageMaker, per endpoint and variant).
ROLLBACK_METRICS = {"5xx-errors": "Invocation5XXErrors", "model-errors": "InvocationModelErrors"}


def rollback_alarm_requests(endpoint: str) -> list[dict[str, Any]]:
    """PutMetricAlarm requests: any error answered in a minute during the bake rolls back."""
    return [
        {
            "AlarmName": f"{endpoint}-{suffix}",
            "AlarmDescription": f"{metric} on {endpoint}: rolls back its blue/green update",
            "Namespace": "AWS/SageMaker",
            "MetricName": metric,
            "Dimensions": [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": VARIANT_NAME},
            ],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        for suffix, metric in ROLLBACK_METRICS.items()
    ]


def deployment_config(settings: Settings, endpoint: str) -> dict[str, Any] | None:
    """Blue/green with alarm rollback for an instance endpoint's update; None for serverless.

    SageMaker documents deployment guardrails for real-time instance endpoints; canary sizes are
    shares of an instance fleet, which a serverless variant does not have.
    """
    if settings.endpoint_kind is not EndpointKind.INSTANCE:
        return None
    routing: dict[str, Any] = {
        "Type": settings.deployment_traffic.value,
        "WaitIntervalInSeconds": settings.bake_seconds,
    }
    if settings.deployment_traffic is Traffic.CANARY:
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": r["AlarmName"]} for r in rollback_alarm_requests(endpoint)]
        },
    }
