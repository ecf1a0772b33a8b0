"""Checks of Create* requests beyond the service model: what the built-in algorithm accepts."""

from __future__ import annotations

import re
from typing import Any

from xgbpipe.local.sagemaker.errors import validation_error
from xgbpipe.local.sagemaker.transform import FieldFilter

XGBOOST_IMAGE = re.compile(
    r"^(?P<registry>\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?)/sagemaker-xgboost:(?P<tag>\S+)$"
)
SUPPORTED_IMAGE_TAG = "3.0-5"


def check_image(image: str) -> str | None:
    """Reject images we cannot run; return a warning when the tag is not the one we emulate."""
    match = XGBOOST_IMAGE.match(image)
    if match is None:
        raise validation_error(
            "The local SageMaker runs only the built-in XGBoost image (<account>.dkr.ecr."
            f"<region>.amazonaws.com/sagemaker-xgboost:{SUPPORTED_IMAGE_TAG}); got '{image}'."
        )
    tag = match.group("tag")
    if tag != SUPPORTED_IMAGE_TAG:
        return (
            f"Image tag {tag} requested; the local SageMaker runs it as "
            f"{SUPPORTED_IMAGE_TAG} (xgboost 3.0.5)."
        )
    return None


def check_variants(variants: list[dict[str, Any]]) -> None:
    """Each production variant is either serverless or sized by instances, and names a model."""
    names = [variant["VariantName"] for variant in variants]
    if len(set(names)) != len(names):
        raise validation_error(
            f"VariantName must be unique within an endpoint configuration: {names}"
        )
    for variant in variants:
        serverless = "ServerlessConfig" in variant
        instances = "InstanceType" in variant or "InitialInstanceCount" in variant
        if serverless == instances:
            raise validation_error(
                f"Production variant {variant['VariantName']} must have either "
                "ServerlessConfig, or InstanceType and InitialInstanceCount, but not both."
            )
        if instances and not ("InstanceType" in variant and "InitialInstanceCount" in variant):
            raise validation_error(
                f"Production variant {variant['VariantName']} needs both InstanceType and "
                "InitialInstanceCount."
            )
        if not variant.get("ModelName"):
            raise validation_error(
                f"Production variant {variant['VariantName']} needs a ModelName."
            )


def check_transform_settings(params: dict[str, Any]) -> None:
    """Input source, payload limits and the JSONPath filters the local transform supports."""
    source = params["TransformInput"]["DataSource"].get("S3DataSource")
    if source is None or source.get("S3DataType") != "S3Prefix":
        raise validation_error(
            "The local SageMaker reads transform input only from an S3DataSource of "
            "S3DataType S3Prefix."
        )
    payload_mb = params.get("MaxPayloadInMB", 6)
    concurrency = params.get("MaxConcurrentTransforms", 1)
    if payload_mb * concurrency > 100:
        raise validation_error(
            f"MaxConcurrentTransforms ({concurrency}) * MaxPayloadInMB ({payload_mb}) must "
            "not exceed 100 MB."
        )
    if payload_mb == 0:
        raise validation_error(
            "MaxPayloadInMB 0 (chunked encoding) is not supported by the built-in XGBoost "
            "algorithm."
        )
    processing = params.get("DataProcessing", {})
    for field in ("InputFilter", "OutputFilter"):
        try:
            FieldFilter(processing.get(field, "$"))
        except ValueError as error:
            raise validation_error(f"DataProcessing.{field}: {error}") from error
