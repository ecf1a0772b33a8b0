"""`xgbpipe local invoke` of each sample event under events/ against the local cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack
from xgbpipe.local.invoke import invoke_once
from xgbpipe.local.state import CloudState

pytestmark = pytest.mark.e2e

EVENTS = sorted((ROOT / "events").glob("*.json"))


def cloud_state(stack: Stack) -> CloudState:
    cloud = stack.cloud
    assert cloud.endpoints is not None
    return CloudState(
        pid=0,
        template=str(cloud.template_path),
        parameter_overrides=cloud.parameter_overrides,
        services_url=cloud.endpoints.services,
        sagemaker_url=cloud.endpoints.sagemaker,
        lambda_url=cloud.endpoints.lambda_api or "",
        api_url=cloud.api_url,
        environment=cloud.environment(),
    )


@pytest.mark.parametrize("event_file", EVENTS, ids=[path.stem for path in EVENTS])
def test_sample_event_runs_its_function(stack: Stack, event_file: Path) -> None:
    function = event_file.stem.split(".")[0]
    invocation = invoke_once(cloud_state(stack), function, json.loads(event_file.read_text()))

    assert not invocation.failed, invocation.payload
    result = invocation.payload
    if function == "predict":
        assert result["statusCode"] in (200, 404)
        assert isinstance(json.loads(result["body"]), dict)
    elif function == "start_training":
        assert result["outcomes"]
    elif function == "reconcile_runs":
        assert isinstance(result["outcomes"], list)
    else:
        assert "action" in result
