"""A local SageMaker: trains, batch-transforms and serves real XGBoost on AWS's protocols.

One port serves the control plane (JSON 1.1, `X-Amz-Target: SageMaker.<Operation>`) and the
runtime (`POST /endpoints/<name>/invocations`), so unmodified boto3 clients reach it through
`AWS_ENDPOINT_URL_SAGEMAKER` and `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`::

    server = LocalSageMaker(s3_endpoint_url="http://127.0.0.1:5000",
                            events_endpoint_url="http://127.0.0.1:5000")
    server.start()      # serves from background threads; jobs run in worker processes
    ...                 # boto3.client("sagemaker", endpoint_url=server.url)
    server.stop()

or standalone: `python -m xgbpipe.local.sagemaker --port 4567 [--state-dir DIR]`.

Jobs run in spawned processes, so a script that starts the server needs the usual
`if __name__ == "__main__":` guard.
"""

from xgbpipe.local.sagemaker.server import LocalSageMaker

__all__ = ["LocalSageMaker"]
