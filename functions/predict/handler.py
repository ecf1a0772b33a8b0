"""API Gateway -> the live model of /models/{model}: its description, or its predictions."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.predictions import PredictionRequestError, UnsupportedMediaType
from pipeline_common.serving import (
    EndpointUnavailable,
    ModelFailed,
    ModelNotFound,
    describe_model,
    predict,
)

app = APIGatewayRestResolver()


@app.get("/models/<model>")
@tracer.capture_method
def get_model(model: str) -> dict[str, Any]:
    return describe_model(Settings.from_env(), model)


@app.post("/models/<model>/predictions")
@tracer.capture_method
def post_predictions(model: str) -> dict[str, Any]:
    request = app.current_event
    try:
        body = request.decoded_body
    except (UnicodeDecodeError, ValueError) as error:
        raise PredictionRequestError("the body must be UTF-8 text (JSON or CSV)") from error
    result = predict(Settings.from_env(), model, body, request.headers.get("content-type"))
    metrics.add_metric(name="RowsPredicted", unit="Count", value=len(result["predictions"]))
    return result


def _error(status: int, message: str) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message}
    )


@app.exception_handler(UnsupportedMediaType)
def unsupported_media_type(error: UnsupportedMediaType) -> Response:
    return _error(415, str(error))


@app.exception_handler(PredictionRequestError)
def bad_request(error: PredictionRequestError) -> Response:
    return _error(400, str(error))


@app.exception_handler(ModelNotFound)
def not_found(error: ModelNotFound) -> Response:
    return _error(404, str(error))


@app.exception_handler(EndpointUnavailable)
def unavailable(error: EndpointUnavailable) -> Response:
    return _error(503, str(error))


@app.exception_handler(ModelFailed)
def model_failed(error: ModelFailed) -> Response:
    return _error(502, str(error))


@app.exception_handler(Exception)
def unexpected(error: Exception) -> Response:
    # Details go to the log, never to the caller.
    logger.exception("unhandled error")
    return _error(500, "internal error; the function's log has the details")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
