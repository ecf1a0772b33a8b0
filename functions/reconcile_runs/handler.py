"""Schedule -> settle every run whose next SageMaker event never arrived."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.reconciliation import reconcile


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    outcomes = reconcile(Settings.from_env())
    for outcome in outcomes:
        logger.info(outcome.action, extra=outcome.as_dict())
    return {"outcomes": [outcome.as_dict() for outcome in outcomes]}
