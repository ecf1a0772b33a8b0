"""The SageMaker runtime's side of an invocation: routing to a variant and wrapping errors."""

from __future__ import annotations

import random

from xgbpipe.local.sagemaker.errors import RuntimeServiceError
from xgbpipe.local.sagemaker.serving import ContainerError

MAX_INVOCATION_BYTES = 6291456


def check_payload_size(body: bytes) -> None:
    if len(body) > MAX_INVOCATION_BYTES:
        raise RuntimeServiceError(
            "ValidationError",
            "1 validation error detected: Value at 'body' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_INVOCATION_BYTES}",
            400,
        )


def pick_variant(name: str, weights: dict[str, float], target: str | None) -> str:
    """The requested variant, else one drawn by weight as SageMaker splits traffic."""
    if target is not None:
        if target not in weights:
            raise RuntimeServiceError(
                "ValidationError",
                f"Variant {target} not found for endpoint {name}.",
                400,
            )
        return target
    names = list(weights)
    if len(names) == 1 or not any(weights.values()):
        return names[0]
    return random.choices(names, weights=[weights[n] for n in names])[0]  # noqa: S311


def model_error(
    region: str, account_id: str, name: str, variant: str, error: ContainerError
) -> RuntimeServiceError:
    """A container's non-2xx answer, wrapped the way the SageMaker runtime wraps it."""
    side = "client" if error.status < 500 else "server"
    group = f"/aws/sagemaker/Endpoints/{name}"
    return RuntimeServiceError(
        "ModelError",
        f"Received {side} error ({error.status}) from {variant} with message "
        f'"{error.message}". '
        f"See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group} in account {account_id} for more information.",
        424,
        original_status=error.status,
        original_message=error.message,
        log_stream_arn=f"arn:aws:logs:{region}:{account_id}:log-group:{group}",
    )
