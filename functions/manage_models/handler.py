"""API Gateway -> a model's versions, a rollback to an earlier one, or its endpoint deleted."""

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.models import ModelConflict, delete, rollback, versions
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.serving import ModelNotFound

app = APIGatewayRestResolver()


class BadRequest(ValueError):
    pass


@app.get("/models/<model>/versions")
@tracer.capture_method
def get_versions(model: str) -> dict[str, Any]:
    return versions(Settings.from_env(), model)


@app.post("/models/<model>/rollback")
@tracer.capture_method
def post_rollback(model: str) -> Response:
    example = '{"version": "<run id>"}, or no body for the previous version'
    try:
        document = json.loads(app.current_event.body or "{}")
    except json.JSONDecodeError as error:
        raise BadRequest(f"the body must be JSON such as {example}: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("version", ""), str | None):
        raise BadRequest(f"the body must be a JSON object such as {example}")
    started = rollback(Settings.from_env(), model, document.get("version") or None)
    metrics.add_metric(name="RollbacksStarted", unit="Count", value=1)
    return _json(202, started)


@app.delete("/models/<model>")
@tracer.capture_method
def delete_model(model: str) -> Response:
    return _json(202, delete(Settings.from_env(), model))


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(BadRequest)
def bad_request(error: BadRequest) -> Response:
    return _json(400, {"message": str(error)})


@app.exception_handler(ModelNotFound)
def not_found(error: ModelNotFound) -> Response:
    return _json(404, {"message": str(error)})


@app.exception_handler(ModelConflict)
def conflict(error: ModelConflict) -> Response:
    return _json(409, {"message": str(error)})


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    # Details go to the log, never to the caller.
    logger.exception("unhandled error")
    return _json(500, {"message": "internal error; the function's log has the details"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
