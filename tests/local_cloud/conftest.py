"""Fixtures for the local cloud's own tests: a copy of template.yaml beside throwaway handlers.

The real functions are exercised by tests/e2e; here each test writes the handlers it needs, so
the wiring, runner and gateway are tested for what they do, not for what the pipeline does.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIRS = (
    "start_training",
    "run_batch_transform",
    "deploy_model",
    "track_endpoint",
    "predict",
)

RECORDING_HANDLER = """
import json, os
import boto3

def lambda_handler(event, context):
    table = boto3.resource("dynamodb").Table(os.environ["RUNS_TABLE"])
    table.put_item(Item={
        "model": os.path.basename(os.getcwd()),
        "run_id": context.aws_request_id,
        "event": json.dumps(event),
    })
    return {"statusCode": 200, "body": json.dumps({"seen": event.get("path")})}
"""

StackFactory = Callable[[dict[str, str]], Path]


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    """A stack directory: the real template, a one-module layer and the given handlers."""

    def make(handlers: dict[str, str]) -> Path:
        stack = tmp_path / "stack"
        stack.mkdir()
        shutil.copy(ROOT / "template.yaml", stack / "template.yaml")
        layer = stack / "layers" / "pipeline_common" / "pipeline_common"
        layer.mkdir(parents=True)
        (layer / "__init__.py").write_text('LAYER = "local copy"\n')
        for name in FUNCTION_DIRS:
            code_dir = stack / "functions" / name
            code_dir.mkdir(parents=True)
            source = handlers.get(name, RECORDING_HANDLER)
            (code_dir / "handler.py").write_text(textwrap.dedent(source))
        return stack / "template.yaml"

    return make
