"""`python -m xgbpipe.local.sagemaker`: run the local SageMaker until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from xgbpipe.local.sagemaker.server import LocalSageMaker


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m xgbpipe.local.sagemaker",
        description="Serve the SageMaker control plane and runtime on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4567, help="0 picks a free port")
    parser.add_argument("--state-dir", type=Path, help="keep resources as JSON in this directory")
    parser.add_argument("--max-workers", type=int, default=2, help="jobs that run at once")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account-id", default="123456789012")
    parser.add_argument(
        "--s3-endpoint-url", help="default: boto3's environment (AWS_ENDPOINT_URL...)"
    )
    parser.add_argument("--events-endpoint-url", help="default: boto3's environment")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = LocalSageMaker(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        max_workers=args.max_workers,
        region=args.region,
        account_id=args.account_id,
        s3_endpoint_url=args.s3_endpoint_url,
        events_endpoint_url=args.events_endpoint_url,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    server.start()
    print(f"local SageMaker on {server.url}", flush=True)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
