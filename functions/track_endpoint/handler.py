"""Endpoint state change -> the deploying run goes live (or fails) and is announced."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.endpoint_tracking import on_endpoint_change
from pipeline_common.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    outcome = on_endpoint_change(Settings.from_env(), event.detail)
    logger.info(outcome.action, extra=outcome.as_dict())
    return outcome.as_dict()
