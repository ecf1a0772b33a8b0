"""A local SageMaker that trains, batch-transforms and serves with real XGBoost on AWS's protocols."""

from xgbpipe.local.sagemaker.server import LocalSageMaker

__all__ = ["LocalSageMaker"]
