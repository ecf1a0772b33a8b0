"""The prediction API's logic: the live model's description and predictions from its endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline_common import clients
from pipeline_common.config import Settings
from pipeline_common.naming import RunRef
from pipeline_common.predictions import PredictionRequest, parse_predictions, parse_request
from pipeline_common.runs import RunsTable
from pipeline_common.sagemaker_calls import describe_endpoint, error_code

_RUN_FIELDS = (
    "run_id",
    "stage",
    "status",
    "reason",
    "metrics",
    "gate",
    "training_metrics",
    "objective",
    "num_features",
    "training_job",
    "transform_job",
    "endpoint",
    "created_at",
    "updated_at",
    "finished_at",
)


class ModelNotFound(LookupError):
    pass


class EndpointUnavailable(RuntimeError):
    pass


class ModelFailed(RuntimeError):
    pass


def describe_model(settings: Settings, model: str) -> dict[str, Any]:
    runs = RunsTable(settings.runs_table)
    item = runs.model(model)
    if item is None:
        raise ModelNotFound(f"there is no model named {model}; drop datasets/{model}/*.csv first")
    latest = runs.get(RunRef(model, item["latest_run_id"])) if item.get("latest_run_id") else None
    return {
        "model": model,
        "live": _live_view(item["live"]) if item.get("live") else None,
        "latest_run": {k: latest[k] for k in _RUN_FIELDS if k in latest} if latest else None,
        "retired": item.get("retired"),
    }


def _live_view(live: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in live.items() if k != "run_id"}
    return {"version": live["run_id"], **view}


def predict(
    settings: Settings, model: str, body: str | None, content_type: str | None
) -> dict[str, Any]:
    item = RunsTable(settings.runs_table).model(model)
    if item is None:
        raise ModelNotFound(f"there is no model named {model}")
    live = item.get("live")
    if not live:
        raise ModelNotFound(_not_serving(model, item))
    request = parse_request(body, content_type, int(live["num_features"]))
    return {
        "predictions": parse_predictions(_invoke(live["endpoint"], request)),
        "model": model,
        "version": live["run_id"],
    }


def _not_serving(model: str, item: Mapping[str, Any]) -> str:
    retired = item.get("retired")
    if not retired:
        return f"model {model} has no live version yet; see GET /models/{model}"
    return (
        f"model {model} serves no version: {retired['reason']} at {retired['at']}; "
        f"POST /models/{model}/rollback puts the last version back, or drop new data"
    )


def _invoke(endpoint: str, request: PredictionRequest) -> bytes:
    try:
        response = clients.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint,
            ContentType="text/csv",
            Accept="text/csv",
            Body=request.as_csv().encode(),
        )
    except ClientError as error:
        raise _invocation_error(endpoint, error) from error
    body: bytes = response["Body"].read()
    return body


def _invocation_error(endpoint: str, error: ClientError) -> Exception:
    code = error_code(error)
    details = error.response.get("Error", {})
    if code == "ModelError":
        original = error.response.get("OriginalMessage") or details.get("Message", "")
        return ModelFailed(f"the model could not score the rows: {original}")
    if code in {"ModelNotReadyException", "ServiceUnavailable", "ThrottlingException"}:
        return EndpointUnavailable(f"endpoint {endpoint} is busy or warming up; retry shortly")
    described = describe_endpoint(endpoint)
    if described is None:
        return ModelNotFound(f"endpoint {endpoint} no longer exists; drop the data again")
    if described["EndpointStatus"] != "InService":
        return EndpointUnavailable(f"endpoint {endpoint} is {described['EndpointStatus']}")
    return error
