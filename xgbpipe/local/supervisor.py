"""The background process that holds the local cloud: `xgbpipe local up` starts it.

It starts the cloud, writes state.json (URLs, exports) and env.sh when everything answers, and
on SIGTERM stops every part and removes its pid, state and env files, leaving nothing running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path

from xgbpipe.local.cloud import LocalCloud, Ports
from xgbpipe.local.runner import DUMMY_CREDENTIALS
from xgbpipe.local.state import StateFiles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xgbpipe.local.supervisor")
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", type=json.loads, default="{}")
    parser.add_argument("--parameter-overrides", type=json.loads, default="{}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The cloud talks to itself only; dummy credentials keep boto3 from looking for real ones.
    os.environ.update(DUMMY_CREDENTIALS)
    files = StateFiles(args.state_dir)
    files.pid.write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    cloud = LocalCloud(
        args.template,
        args.state_dir,
        host=args.host,
        ports=Ports(**args.ports),
        parameter_overrides=args.parameter_overrides,
    )
    try:
        cloud.start()
        state = cloud.state(os.getpid())
        files.publish(state)
        logging.info("local cloud ready: %s", json.dumps(state.environment))
        stop.wait()
    finally:
        logging.info("stopping the local cloud")
        cloud.stop()
        files.remove_runtime_files()


if __name__ == "__main__":
    main()
