"""A local SageMaker: trains, batch-transforms and serves real XGBoost on AWS's protocols."""

from xgbpipe.local.sagemaker.server import LocalSageMaker

__all__ = ["LocalSageMaker"]
