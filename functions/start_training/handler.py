"""S3 ObjectCreated on datasets/<model>/ -> validate the drop -> start a training job."""

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pipeline_common.config import Settings
from pipeline_common.naming import parse_dataset_key
from pipeline_common.observability import logger, metrics, tracer
from pipeline_common.outcome import Outcome
from pipeline_common.training import start_training


@logger.inject_lambda_context(correlation_id_path='Records[0].responseElements."x-amz-request-id"')
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    outcomes: list[Outcome] = []
    seen: set[str] = set()
    for record in event.records:
        key = unquote_plus(record.s3.get_object.key)
        dropped = parse_dataset_key(key)
        if record.s3.bucket.name != settings.data_bucket or dropped is None:
            outcomes.append(Outcome("ignored", detail=f"{key} is not a dataset file"))
            continue
        if not dropped.is_trigger or dropped.model in seen:
            outcomes.append(Outcome("ignored", dropped.model, detail=f"{key} starts nothing"))
            continue
        seen.add(dropped.model)
        outcome = start_training(settings, dropped.model)
        logger.info(outcome.action, extra=outcome.as_dict())
        outcomes.append(outcome)
    return {"outcomes": [outcome.as_dict() for outcome in outcomes]}
