"""SageMaker control-plane calls with the idempotency the event-driven flow needs."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# Errors botocore's standard mode retries. Still there after its attempts, they are worth a retry
# of the whole event (Lambda makes two, with backoff), not a failed run.
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
}


def is_transient(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(error) in _TRANSIENT or int(status) >= 500


def already_exists(error: ClientError) -> bool:
    """SageMaker says "exists" with ResourceInUse for jobs and ValidationException for the rest."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "ResourceInUse" or (
        error_code(error) == "ValidationException" and "already exist" in message
    )


def not_found(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "ResourceNotFound" or (
        error_code(error) == "ValidationException"
        and ("could not find" in message or "not found" in message)
    )


def create(operation: str, request: dict[str, Any]) -> bool:
    """Call a Create* operation; False when a replay finds the resource already made."""
    try:
        getattr(clients.client("sagemaker"), operation)(**request)
    except ClientError as error:
        if already_exists(error):
            return False
        raise
    return True


def describe_endpoint(name: str) -> dict[str, Any] | None:
    try:
        response: dict[str, Any] = clients.client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as error:
        if not_found(error):
            return None
        raise
    return response


def delete_endpoint(name: str) -> None:
    """Delete an endpoint; already gone is as good."""
    try:
        clients.client("sagemaker").delete_endpoint(EndpointName=name)
    except ClientError as error:
        if not not_found(error):
            raise
