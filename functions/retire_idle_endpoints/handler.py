"""Schedule -> delete the endpoints that answered no invocation for IdleEndpointHours."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.models import retire_idle
from pipeline_common.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    outcomes = retire_idle(Settings.from_env())
    for outcome in outcomes:
        logger.info(outcome.action, extra=outcome.as_dict())
    return {"outcomes": [outcome.as_dict() for outcome in outcomes]}
