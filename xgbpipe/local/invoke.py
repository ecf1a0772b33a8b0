"""One function, one event, against the running local cloud: the docker-free `sam local invoke`.

A fresh worker runs the function's current code with the environment the template gives it,
exactly as the cloud's own warm workers do; its logs go to this process's stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xgbpipe.local.runner import Endpoints, FunctionWorker, Invocation, function_environment
from xgbpipe.local.state import CloudState
from xgbpipe.local.wiring import load_wiring


def invoke_once(state: CloudState, function_name: str, event: Any) -> Invocation:
    wiring = load_wiring(
        Path(state.template), state.parameter_overrides, queue_url_base=state.services_url
    )
    function = wiring.function(function_name)
    endpoints = Endpoints(state.services_url, state.sagemaker_url, state.lambda_url)
    worker = FunctionWorker(function, function_environment(function, endpoints, wiring.region))
    try:
        return worker.invoke(event)
    finally:
        worker.stop()
