"""The one Logger, Tracer and Metrics of the pipeline's functions (Powertools)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
