"""The control plane: resources, their lifecycles, and the events they emit.

Records are kept as the Describe* responses AWS would return (Python datetimes for times), so
Describe, List and the events are projections of one record. Jobs run through the JobRunner;
endpoints load their models in a background thread of this process and serve from memory.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xgbpipe.local.faults import FaultFile
from xgbpipe.local.sagemaker import events, s3io, state
from xgbpipe.local.sagemaker.bluegreen import Bake, traffic_steps, watch
from xgbpipe.local.sagemaker.checks import check_image, check_transform_settings, check_variants
from xgbpipe.local.sagemaker.distributed import run_distributed_training
from xgbpipe.local.sagemaker.errors import (
    RuntimeServiceError,
    resource_in_use,
    resource_limit_exceeded,
    resource_not_found,
    validation_error,
)
from xgbpipe.local.sagemaker.listing import filtered, page, project, summaries
from xgbpipe.local.sagemaker.metrics import EndpointMetrics
from xgbpipe.local.sagemaker.runtime import check_payload_size, model_error, pick_variant
from xgbpipe.local.sagemaker.serving import Answer, ContainerError, ServingModel
from xgbpipe.local.sagemaker.training import run_training_job
from xgbpipe.local.sagemaker.transform import run_transform_job
from xgbpipe.local.sagemaker.workers import JobRunner, Outcome

logger = logging.getLogger(__name__)

# The account-level quota on training instances in use at once (AWS's default for small types).
TRAINING_INSTANCE_QUOTA = 20
# What a worker process imports before it is handed a job.
WORKER_MODULES = (
    run_training_job.__module__,
    run_distributed_training.__module__,
    run_transform_job.__module__,
    "sklearn.metrics",
)
DEFAULT_MAX_RUNTIME_SECONDS = 86400

_TRAINING_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job stopped: MaxRuntimeInSeconds was exceeded",
}


def now() -> datetime:
    return datetime.now(UTC)


class SageMakerBackend:
    """All control-plane and runtime operations, safe to call from many server threads."""

    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        s3_endpoint_url: str | None,
        publisher: events.EventPublisher,
        runner: JobRunner,
        state_dir: Path | None,
        faults: FaultFile | None = None,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self._s3_endpoint_url = s3_endpoint_url
        self._publisher = publisher
        self._runner = runner
        self._state_file = state_dir / "sagemaker-state.json" if state_dir else None
        self._faults = faults
        self._lock = threading.RLock()
        self._training: dict[str, dict[str, Any]] = {}
        self._transforms: dict[str, dict[str, Any]] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, list[dict[str, str]]] = {}
        self._serving: dict[str, dict[str, ServingModel]] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._bakes: dict[str, Bake] = {}
        # Only toward a local services endpoint: never publish to a real account's CloudWatch.
        self._metrics = EndpointMetrics(lambda: self._cloudwatch) if s3_endpoint_url else None
        self._restore()

    # ---------------------------------------------------------------- helpers

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    def _s3(self) -> Any:
        return s3io.s3_client(self._s3_endpoint_url, self.region)

    @functools.cached_property
    def _cloudwatch(self) -> Any:
        return s3io.aws_client("cloudwatch", self._s3_endpoint_url, self.region)

    def _persist(self) -> None:
        if self._state_file is None:
            return
        state.save(
            self._state_file,
            {
                "training": self._training,
                "transforms": self._transforms,
                "models": self._models,
                "configs": self._configs,
                "endpoints": self._endpoints,
                "tags": self._tags,
            },
        )

    def _restore(self) -> None:
        if self._state_file is None:
            return
        saved = state.load(self._state_file)
        self._training = saved.get("training", {})
        self._transforms = saved.get("transforms", {})
        self._models = saved.get("models", {})
        self._configs = saved.get("configs", {})
        self._endpoints = saved.get("endpoints", {})
        self._tags = saved.get("tags", {})
        reason = "InternalServerError: the local SageMaker stopped while the job ran."
        for job in self._training.values():
            if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
                job.update(
                    TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=reason
                )
        for job in self._transforms.values():
            if job["TransformJobStatus"] in ("InProgress", "Stopping"):
                job.update(TransformJobStatus="Failed", FailureReason=reason)
        for endpoint in list(self._endpoints.values()):
            if endpoint["EndpointStatus"] == "Deleting":
                del self._endpoints[endpoint["EndpointName"]]
            elif endpoint["EndpointStatus"] != "Failed":
                self._start_deployment(
                    endpoint["EndpointName"], endpoint["EndpointConfigName"], restoring=True
                )

    def _tags_of(self, arn: str) -> list[dict[str, str]]:
        return list(self._tags.get(arn, []))

    def _set_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        merged = {tag["Key"]: tag["Value"] for tag in self._tags.get(arn, [])}
        merged.update({tag["Key"]: tag["Value"] for tag in tags})
        self._tags[arn] = [{"Key": key, "Value": value} for key, value in merged.items()]

    def _injected(self, kind: str, outcome: Outcome) -> Outcome:
        """A job that would have completed fails instead while a fault is armed for its kind."""
        fault = self._faults.claim(kind) if self._faults and outcome.status == "Completed" else None
        return Outcome("Failed", reason=fault.message) if fault else outcome

    def _worker_spec(self, job: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {
            "job": copy.deepcopy(job),
            "region": self.region,
            "s3_endpoint_url": self._s3_endpoint_url,
            **extra,
        }

    # ---------------------------------------------------------------- training jobs

    def create_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        algorithm = params.get("AlgorithmSpecification") or {}
        image = algorithm.get("TrainingImage")
        if not image:
            raise validation_error(
                "AlgorithmSpecification.TrainingImage is required: the local SageMaker runs the "
                "built-in XGBoost image and has no algorithm resources."
            )
        warning = check_image(image)
        channels = params.get("InputDataConfig") or []
        self._check_channels(channels, params["RoleArn"])
        resources = params.get("ResourceConfig") or {"InstanceCount": 1}
        with self._lock:
            if name in self._training:
                raise resource_in_use(
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({self.arn('training-job', name)})"
                )
            self._check_training_quota(resources.get("InstanceCount", 1))
            created = now()
            job = {
                **copy.deepcopy({key: value for key, value in params.items() if key != "Tags"}),
                "TrainingJobArn": self.arn("training-job", name),
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "StoppingCondition": params.get(
                    "StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_SECONDS}
                ),
                "HyperParameters": params.get("HyperParameters", {}),
                "CreationTime": created,
                "LastModifiedTime": created,
                "SecondaryStatusTransitions": [
                    {
                        "Status": "Starting",
                        "StartTime": created,
                        "StatusMessage": warning or _TRAINING_MESSAGES["Starting"],
                    }
                ],
            }
            self._training[name] = job
            self._set_tags(job["TrainingJobArn"], params.get("Tags", []))
            self._training_changed(name)
            # One instance keeps the single-host path; more run as distributed training.
            distributed = resources.get("InstanceCount", 1) > 1
            self._runner.submit(
                f"training/{name}",
                run_distributed_training if distributed else run_training_job,
                self._worker_spec(job),
                lambda status: self._training_progress(name, status),
                lambda outcome: self._training_done(name, outcome),
            )
            self._arm_max_runtime(name, job["StoppingCondition"].get("MaxRuntimeInSeconds"))
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def _check_channels(self, channels: list[dict[str, Any]], role_arn: str) -> None:
        client = self._s3()
        for channel in channels:
            source = channel["DataSource"].get("S3DataSource")
            if source is None:
                raise validation_error(
                    f"Channel {channel['ChannelName']}: the local SageMaker reads only "
                    "S3DataSource inputs."
                )
            if source["S3DataType"] != "S3Prefix":
                raise validation_error(
                    f"Channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not "
                    "supported by the local SageMaker; use S3Prefix."
                )
            location = s3io.S3Location.parse(source["S3Uri"])
            try:
                keys = s3io.list_keys(client, location)
            except Exception:
                logger.info("listing %s failed", source["S3Uri"], exc_info=True)
                keys = []
            if not keys:
                raise validation_error(
                    f'No S3 objects found under S3 URL "{source["S3Uri"]}" given in input data '
                    f"source. Please ensure that the bucket exists in the selected region "
                    f"({self.region}), that objects exist under that S3 prefix, and that the role "
                    f'"{role_arn}" has "s3:ListBucket" permissions on bucket "{location.bucket}".'
                )

    def _check_training_quota(self, requested: int) -> None:
        in_use = sum(
            job.get("ResourceConfig", {}).get("InstanceCount", 1)
            for job in self._training.values()
            if job["TrainingJobStatus"] in ("InProgress", "Stopping")
        )
        if in_use + requested > TRAINING_INSTANCE_QUOTA:
            raise resource_limit_exceeded(
                f"The account-level service limit 'training job usage' is "
                f"{TRAINING_INSTANCE_QUOTA} Instances, with current utilization of {in_use} "
                f"Instances and a request delta of {requested} Instances. Please use AWS Service "
                "Quotas to request an increase for this quota."
            )

    def _arm_max_runtime(self, name: str, seconds: int | None) -> None:
        if not seconds:
            return
        timer = threading.Timer(seconds, self._max_runtime_exceeded, args=(name,))
        timer.daemon = True
        self._timers[name] = timer
        timer.start()

    def _max_runtime_exceeded(self, name: str) -> None:
        with self._lock:
            job = self._training.get(name)
            if job is None or job["TrainingJobStatus"] != "InProgress":
                return
            job["MaxRuntimeExceeded"] = True
        self._runner.stop(f"training/{name}")

    def _secondary(self, job: dict[str, Any], status: str, message: str | None = None) -> None:
        stamp = now()
        transitions = job["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = stamp
        transitions.append(
            {
                "Status": status,
                "StartTime": stamp,
                "StatusMessage": message or _TRAINING_MESSAGES.get(status, status),
            }
        )
        job["SecondaryStatus"] = status
        job["LastModifiedTime"] = stamp
        if status == "Downloading":
            job["TrainingStartTime"] = stamp

    def _training_changed(self, name: str) -> None:
        job = self._training[name]
        self._persist()
        self._publisher.publish(
            events.TRAINING_JOB_STATE_CHANGE,
            job["TrainingJobArn"],
            events.training_job_detail(job, self._tags_of(job["TrainingJobArn"])),
        )

    def _training_progress(self, name: str, status: str) -> None:
        with self._lock:
            job = self._training[name]
            if job["TrainingJobStatus"] != "InProgress":
                return
            self._secondary(job, status)
            self._training_changed(name)

    def _training_done(self, name: str, outcome: Outcome) -> None:
        outcome = self._injected("TrainingJob", outcome)
        with self._lock:
            timer = self._timers.pop(name, None)
            if timer:
                timer.cancel()
            job = self._training[name]
            finished = now()
            status = outcome.status
            if outcome.status == "Completed" and outcome.result is not None:
                job["ModelArtifacts"] = {"S3ModelArtifacts": outcome.result["S3ModelArtifacts"]}
                job["FinalMetricDataList"] = [
                    {**metric, "Timestamp": datetime.fromtimestamp(metric["Timestamp"], UTC)}
                    for metric in outcome.result["FinalMetricDataList"]
                ]
            elif outcome.status == "Failed":
                job["FailureReason"] = outcome.reason
            secondary = "MaxRuntimeExceeded" if job.pop("MaxRuntimeExceeded", False) else status
            job["TrainingJobStatus"] = status
            self._secondary(job, secondary)
            job["TrainingEndTime"] = finished
            started = job.get("TrainingStartTime", job["CreationTime"])
            seconds = max(1, int((finished - started).total_seconds()))
            job["TrainingTimeInSeconds"] = seconds
            job["BillableTimeInSeconds"] = seconds
            self._training_changed(name)

    def _training_job(self, name: str) -> dict[str, Any]:
        job = self._training.get(name)
        if job is None:
            raise validation_error("Requested resource not found.")
        return job

    def describe_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return project("DescribeTrainingJob", self._training_job(params["TrainingJobName"]))

    def stop_training_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        with self._lock:
            job = self._training.get(name)
            if job is None:
                raise resource_not_found(f"Training job {name} does not exist.")
            if job["TrainingJobStatus"] != "InProgress":
                raise validation_error(
                    "The request was rejected because the training job is in status "
                    f"{job['TrainingJobStatus']}."
                )
            job["TrainingJobStatus"] = "Stopping"
            self._secondary(job, "Stopping")
            self._training_changed(name)
        self._runner.stop(f"training/{name}")
        return {}

    def list_training_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = filtered(
                list(self._training.values()), params, "TrainingJobName", "TrainingJobStatus"
            )
            found_page, token = page(found, params)
            response: dict[str, Any] = {
                "TrainingJobSummaries": summaries("TrainingJobSummary", found_page)
            }
        if token:
            response["NextToken"] = token
        return response

    # ---------------------------------------------------------------- models

    def create_model(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelName"]
        containers = params.get("Containers") or []
        container = params.get("PrimaryContainer") or (containers[0] if containers else None)
        if container is None or not container.get("Image"):
            raise validation_error("PrimaryContainer with an Image is required.")
        check_image(container["Image"])
        if not container.get("ModelDataUrl"):
            raise validation_error(
                "PrimaryContainer.ModelDataUrl is required: the built-in XGBoost container "
                "serves the model.tar.gz it points at."
            )
        with self._lock:
            arn = self.arn("model", name)
            if name in self._models:
                raise validation_error(f'Cannot create already existing model "{arn}".')
            model = {
                **copy.deepcopy({key: value for key, value in params.items() if key != "Tags"}),
                "PrimaryContainer": container,
                "ModelArn": arn,
                "CreationTime": now(),
            }
            self._models[name] = model
            self._set_tags(arn, params.get("Tags", []))
            self._persist()
        return {"ModelArn": arn}

    def _model(self, name: str) -> dict[str, Any]:
        model = self._models.get(name)
        if model is None:
            raise validation_error(f'Could not find model "{self.arn("model", name)}".')
        return model

    def describe_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return project("DescribeModel", self._model(params["ModelName"]))

    def delete_model(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            model = self._model(params["ModelName"])
            del self._models[params["ModelName"]]
            self._tags.pop(model["ModelArn"], None)
            self._persist()
        return {}

    def list_models(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = filtered(list(self._models.values()), params, "ModelName", None)
            found_page, token = page(found, params)
            response: dict[str, Any] = {"Models": summaries("ModelSummary", found_page)}
        if token:
            response["NextToken"] = token
        return response

    # ---------------------------------------------------------------- transform jobs

    def create_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        check_transform_settings(params)
        with self._lock:
            arn = self.arn("transform-job", name)
            if name in self._transforms:
                raise resource_in_use(
                    "Job name must be unique within an AWS account and region, and a job with "
                    f"this name already exists ({arn})"
                )
            model = self._model(params["ModelName"])
            created = now()
            job = {
                **copy.deepcopy({key: value for key, value in params.items() if key != "Tags"}),
                "TransformJobArn": arn,
                "TransformJobStatus": "InProgress",
                "MaxPayloadInMB": params.get("MaxPayloadInMB", 6),
                "CreationTime": created,
                "TransformStartTime": created,
                "LastModifiedTime": created,
            }
            self._transforms[name] = job
            self._set_tags(arn, params.get("Tags", []))
            self._transform_changed(name)
            self._runner.submit(
                f"transform/{name}",
                run_transform_job,
                self._worker_spec(job, model_data_url=model["PrimaryContainer"]["ModelDataUrl"]),
                lambda _status: None,
                lambda outcome: self._transform_done(name, outcome),
            )
        return {"TransformJobArn": arn}

    def _transform_changed(self, name: str) -> None:
        job = self._transforms[name]
        self._persist()
        self._publisher.publish(
            events.TRANSFORM_JOB_STATE_CHANGE,
            job["TransformJobArn"],
            events.transform_job_detail(job, self._tags_of(job["TransformJobArn"])),
        )

    def _transform_done(self, name: str, outcome: Outcome) -> None:
        outcome = self._injected("TransformJob", outcome)
        with self._lock:
            job = self._transforms[name]
            job["TransformJobStatus"] = outcome.status
            if outcome.status == "Failed":
                job["FailureReason"] = outcome.reason
            job["TransformEndTime"] = job["LastModifiedTime"] = now()
            self._transform_changed(name)

    def describe_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        with self._lock:
            job = self._transforms.get(name)
            if job is None:
                raise validation_error(f"Could not find requested job with name {name}")
            return project("DescribeTransformJob", job)

    def stop_transform_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        with self._lock:
            job = self._transforms.get(name)
            if job is None:
                raise resource_not_found(f"Transform job {name} does not exist.")
            if job["TransformJobStatus"] != "InProgress":
                raise validation_error(
                    "The request was rejected because the transform job is in status "
                    f"{job['TransformJobStatus']}."
                )
            job["TransformJobStatus"] = "Stopping"
            job["LastModifiedTime"] = now()
            self._transform_changed(name)
        self._runner.stop(f"transform/{name}")
        return {}

    def list_transform_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = filtered(
                list(self._transforms.values()), params, "TransformJobName", "TransformJobStatus"
            )
            found_page, token = page(found, params)
            response: dict[str, Any] = {
                "TransformJobSummaries": summaries("TransformJobSummary", found_page)
            }
        if token:
            response["NextToken"] = token
        return response

    # ---------------------------------------------------------------- endpoint configs

    def create_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        variants = params["ProductionVariants"]
        check_variants(variants)
        with self._lock:
            arn = self.arn("endpoint-config", name)
            if name in self._configs:
                raise validation_error(
                    f'Cannot create already existing endpoint configuration "{arn}".'
                )
            for variant in variants:
                self._model(variant["ModelName"])
            self._configs[name] = {
                **copy.deepcopy({key: value for key, value in params.items() if key != "Tags"}),
                "EndpointConfigArn": arn,
                "CreationTime": now(),
            }
            self._set_tags(arn, params.get("Tags", []))
            self._persist()
        return {"EndpointConfigArn": arn}

    def _config(self, name: str) -> dict[str, Any]:
        config = self._configs.get(name)
        if config is None:
            raise validation_error(
                f'Could not find endpoint configuration "{self.arn("endpoint-config", name)}".'
            )
        return config

    def describe_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return project("DescribeEndpointConfig", self._config(params["EndpointConfigName"]))

    def delete_endpoint_config(self, params: dict[str, Any]) -> dict[str, Any]:
        # As on AWS, deleting a config does not touch endpoints already deployed from it.
        with self._lock:
            config = self._config(params["EndpointConfigName"])
            del self._configs[params["EndpointConfigName"]]
            self._tags.pop(config["EndpointConfigArn"], None)
            self._persist()
        return {}

    def list_endpoint_configs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = filtered(list(self._configs.values()), params, "EndpointConfigName", None)
            found_page, token = page(found, params)
            response: dict[str, Any] = {
                "EndpointConfigs": summaries("EndpointConfigSummary", found_page)
            }
        if token:
            response["NextToken"] = token
        return response

    # ---------------------------------------------------------------- endpoints

    def create_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            arn = self.arn("endpoint", name)
            if name in self._endpoints:
                raise validation_error(f'Cannot create already existing endpoint "{arn}".')
            self._config(params["EndpointConfigName"])
            created = now()
            self._endpoints[name] = {
                "EndpointName": name,
                "EndpointArn": arn,
                "EndpointConfigName": params["EndpointConfigName"],
                "EndpointStatus": "Creating",
                "CreationTime": created,
                "LastModifiedTime": created,
                **(
                    {"LastDeploymentConfig": params["DeploymentConfig"]}
                    if "DeploymentConfig" in params
                    else {}
                ),
            }
            self._set_tags(arn, params.get("Tags", []))
            self._endpoint_changed(name)
            self._start_deployment(name, params["EndpointConfigName"])
        return {"EndpointArn": arn}

    def update_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            endpoint = self._endpoint(name)
            if endpoint["EndpointStatus"] != "InService":
                raise validation_error(
                    f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".'
                )
            config_name = params["EndpointConfigName"]
            self._config(config_name)
            if config_name == endpoint["EndpointConfigName"]:
                raise validation_error(
                    f'Endpoint "{endpoint["EndpointArn"]}" already uses endpoint configuration '
                    f'"{config_name}"; create a new endpoint configuration to update it.'
                )
            endpoint["EndpointStatus"] = "Updating"
            endpoint["LastModifiedTime"] = now()
            endpoint.pop("FailureReason", None)
            if "DeploymentConfig" in params:
                endpoint["LastDeploymentConfig"] = params["DeploymentConfig"]
            else:
                endpoint.pop("LastDeploymentConfig", None)
            self._endpoint_changed(name)
            self._start_deployment(name, config_name)
        return {"EndpointArn": endpoint["EndpointArn"]}

    def _start_deployment(self, name: str, config_name: str, *, restoring: bool = False) -> None:
        config = copy.deepcopy(self._configs.get(config_name))
        if config is None:
            # Only after a restart: the config was deleted while the endpoint was down.
            config = {"EndpointConfigName": config_name, "ProductionVariants": []}
        model_urls = {
            variant["VariantName"]: self._models[variant["ModelName"]]["PrimaryContainer"][
                "ModelDataUrl"
            ]
            for variant in config["ProductionVariants"]
            if variant["ModelName"] in self._models
        }
        images = {
            variant["VariantName"]: self._models[variant["ModelName"]]["PrimaryContainer"]["Image"]
            for variant in config["ProductionVariants"]
            if variant["ModelName"] in self._models
        }
        threading.Thread(
            target=self._deploy,
            args=(name, config, model_urls, images, restoring),
            name=f"sm-deploy-{name}",
            daemon=True,
        ).start()

    def _deploy(
        self,
        name: str,
        config: dict[str, Any],
        model_urls: dict[str, str],
        images: dict[str, str],
        restoring: bool,
    ) -> None:
        """Load every variant's model; then switch the endpoint over, or record the failure."""
        loaded: dict[str, ServingModel] = {}
        reason = None
        if not config["ProductionVariants"]:
            reason = f"Endpoint configuration {config['EndpointConfigName']} no longer exists."
        for variant in config["ProductionVariants"]:
            variant_name = variant["VariantName"]
            if variant_name not in model_urls:
                reason = f"Model {variant['ModelName']} of variant {variant_name} was deleted."
                break
            try:
                url = model_urls[variant_name]
                archive = s3io.read(self._s3(), s3io.S3Location.parse(url))
                loaded[variant_name] = ServingModel.from_archive(archive)
            except Exception as error:
                logger.info(
                    "endpoint %s: variant %s failed to load", name, variant_name, exc_info=True
                )
                reason = (
                    f"The primary container for production variant {variant_name} did not pass "
                    f"the ping health check: the model could not be loaded ({error})."
                )[:1024]
                break
        if self._faults and reason is None and not restoring:
            fault = self._faults.claim("Endpoint")
            reason = fault.message if fault else None
        if reason is None and not restoring:
            reason = self._bake(name, config, loaded)
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                return
            if restoring and endpoint["EndpointStatus"] == "InService" and reason is None:
                # Back after a restart: serve again; nothing changed that clients could see.
                self._serving[name] = loaded
                return
            expected = (
                ("Creating", "Updating", "InService")
                if restoring
                else ("Creating", "Updating", "RollingBack")
            )
            if endpoint["EndpointStatus"] not in expected:
                return
            stamp = now()
            if reason is None:
                self._serving[name] = loaded
                endpoint["EndpointConfigName"] = config["EndpointConfigName"]
                endpoint["ProductionVariants"] = self._deployed_variants(config, images, stamp)
                endpoint["EndpointStatus"] = "InService"
            elif endpoint["EndpointStatus"] in ("Updating", "RollingBack") and not restoring:
                endpoint["EndpointStatus"] = "InService"
                endpoint["FailureReason"] = f"Update of the endpoint failed: {reason}"[:1024]
            else:
                endpoint["EndpointStatus"] = "Failed"
                endpoint["FailureReason"] = reason
            endpoint["LastModifiedTime"] = stamp
            self._endpoint_changed(name)

    def _bake(
        self, name: str, config: dict[str, Any], green: dict[str, ServingModel]
    ) -> str | None:
        """Shift a blue/green update's traffic in steps; why it rolled back, or None."""
        with self._lock:
            endpoint = self._endpoints.get(name)
            deployment = (endpoint or {}).get("LastDeploymentConfig") or {}
            policy = deployment.get("BlueGreenUpdatePolicy")
            if endpoint is None or endpoint["EndpointStatus"] != "Updating" or policy is None:
                return None
            alarms = [
                a["AlarmName"]
                for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])
            ]
            instances = sum(v.get("InitialInstanceCount", 1) for v in config["ProductionVariants"])
            bake = self._bakes[name] = Bake(green)
        try:
            why = watch(bake, traffic_steps(policy, instances), alarms, self._alarm_firing)
        finally:
            with self._lock:
                self._bakes.pop(name, None)
        if why is None:
            return None
        with self._lock:
            endpoint = self._endpoints.get(name)
            if endpoint is not None and endpoint["EndpointStatus"] == "Updating":
                endpoint["EndpointStatus"] = "RollingBack"
                endpoint["LastModifiedTime"] = now()
                self._endpoint_changed(name)
        return f"the update was rolled back: {why}"

    def _alarm_firing(self, alarms: list[str]) -> str | None:
        try:
            states = self._cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
        except Exception:
            logger.debug("could not read the rollback alarms %s", alarms, exc_info=True)
            return None
        return next((a["AlarmName"] for a in states if a["StateValue"] == "ALARM"), None)

    @staticmethod
    def _deployed_variants(
        config: dict[str, Any], images: dict[str, str], stamp: datetime
    ) -> list[dict[str, Any]]:
        deployed = []
        for variant in config["ProductionVariants"]:
            image = images[variant["VariantName"]]
            entry: dict[str, Any] = {
                "VariantName": variant["VariantName"],
                "DeployedImages": [
                    {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": stamp}
                ],
                "CurrentWeight": variant.get("InitialVariantWeight", 1.0),
                "DesiredWeight": variant.get("InitialVariantWeight", 1.0),
            }
            if "ServerlessConfig" in variant:
                entry["CurrentServerlessConfig"] = variant["ServerlessConfig"]
                entry["DesiredServerlessConfig"] = variant["ServerlessConfig"]
            else:
                entry["CurrentInstanceCount"] = variant["InitialInstanceCount"]
                entry["DesiredInstanceCount"] = variant["InitialInstanceCount"]
            deployed.append(entry)
        return deployed

    def _endpoint_changed(self, name: str) -> None:
        endpoint = self._endpoints[name]
        self._persist()
        self._publisher.publish(
            events.ENDPOINT_STATE_CHANGE,
            endpoint["EndpointArn"],
            events.endpoint_detail(endpoint, self._tags_of(endpoint["EndpointArn"])),
        )

    def _endpoint(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise validation_error(f'Could not find endpoint "{self.arn("endpoint", name)}".')
        return endpoint

    def describe_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return project("DescribeEndpoint", self._endpoint(params["EndpointName"]))

    def delete_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        with self._lock:
            endpoint = self._endpoint(name)
            endpoint["EndpointStatus"] = "Deleting"
            endpoint["LastModifiedTime"] = now()
            self._endpoint_changed(name)
            del self._endpoints[name]
            self._serving.pop(name, None)
            self._tags.pop(endpoint["EndpointArn"], None)
            self._persist()
        return {}

    def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = filtered(
                list(self._endpoints.values()), params, "EndpointName", "EndpointStatus"
            )
            found_page, token = page(found, params)
            response: dict[str, Any] = {"Endpoints": summaries("EndpointSummary", found_page)}
        if token:
            response["NextToken"] = token
        return response

    # ---------------------------------------------------------------- tags

    def _known_arns(self) -> set[str]:
        return (
            {job["TrainingJobArn"] for job in self._training.values()}
            | {job["TransformJobArn"] for job in self._transforms.values()}
            | {model["ModelArn"] for model in self._models.values()}
            | {config["EndpointConfigArn"] for config in self._configs.values()}
            | {endpoint["EndpointArn"] for endpoint in self._endpoints.values()}
        )

    def _check_arn(self, arn: str) -> None:
        if arn not in self._known_arns():
            raise validation_error(f"Resource {arn} not found.")

    def add_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._check_arn(params["ResourceArn"])
            self._set_tags(params["ResourceArn"], params["Tags"])
            self._persist()
            return {"Tags": self._tags_of(params["ResourceArn"])}

    def list_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._check_arn(params["ResourceArn"])
            tags, token = page(self._tags_of(params["ResourceArn"]), params)
        return {"Tags": tags, **({"NextToken": token} if token else {})}

    def delete_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._check_arn(params["ResourceArn"])
            self._tags[params["ResourceArn"]] = [
                tag
                for tag in self._tags_of(params["ResourceArn"])
                if tag["Key"] not in params["TagKeys"]
            ]
            self._persist()
        return {}

    # ---------------------------------------------------------------- runtime

    def invoke_endpoint(
        self,
        name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        target_variant: str | None,
    ) -> tuple[Answer | None, str]:
        """Route to a variant and answer as the container would; errors wrapped as AWS does."""
        check_payload_size(body)
        with self._lock:
            endpoint = self._endpoints.get(name)
            variants = self._serving.get(name)
            if (
                endpoint is None
                or variants is None
                or endpoint["EndpointStatus"] not in ("InService", "Updating")
            ):
                raise RuntimeServiceError(
                    "ValidationError",
                    f"Endpoint {name} of account {self.account_id} not found.",
                    400,
                )
            weights = {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]}
            bake = self._bakes.get(name)
        variant = pick_variant(name, weights, target_variant)
        green = bake is not None and bake.takes() and variant in bake.green
        self._count(name, variant, "Invocations")
        try:
            if green and self._faults and (fault := self._faults.claim("Invocation")):
                raise ContainerError(500, fault.message)
            serving = bake.green if green and bake else variants
            return serving[variant].invoke(body, content_type, accept), variant
        except ContainerError as error:
            self._count(name, variant, "InvocationModelErrors")
            if green and bake:
                bake.errors.append(f"{error.status} {error.message}")
            raise model_error(self.region, self.account_id, name, variant, error) from error

    def _count(self, endpoint: str, variant: str, metric: str) -> None:
        if self._metrics is not None:
            self._metrics.count(endpoint, variant, metric)

    # ---------------------------------------------------------------- lifecycle

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "StopTrainingJob": self.stop_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "CreateModel": self.create_model,
            "DescribeModel": self.describe_model,
            "DeleteModel": self.delete_model,
            "ListModels": self.list_models,
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
            "StopTransformJob": self.stop_transform_job,
            "ListTransformJobs": self.list_transform_jobs,
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self.describe_endpoint_config,
            "DeleteEndpointConfig": self.delete_endpoint_config,
            "ListEndpointConfigs": self.list_endpoint_configs,
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.stop()
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
