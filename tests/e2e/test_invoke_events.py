"""`xgbpipe local invoke` of each sample event under events/ against the local cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack
from xgbpipe.local.invoke import invoke_once

pytestmark = pytest.mark.e2e

EVENTS = sorted((ROOT / "events").glob("*.json"))


@pytest.mark.parametrize("event_file", EVENTS, ids=[path.stem for path in EVENTS])
def test_sample_event_runs_its_function(stack: Stack, event_file: Path) -> None:
    function = event_file.stem.split(".")[0]
    invocation = invoke_once(stack.cloud.state(0), function, json.loads(event_file.read_text()))

    assert not invocation.failed, invocation.payload
    result = invocation.payload
    if function in ("predict", "manage_models"):
        assert result["statusCode"] in (200, 202, 404)
        assert isinstance(json.loads(result["body"]), dict)
    elif function == "start_training":
        assert result["outcomes"]
    elif function in ("reconcile_runs", "retire_idle_endpoints"):
        assert isinstance(result["outcomes"], list)
    else:
        assert "action" in result
