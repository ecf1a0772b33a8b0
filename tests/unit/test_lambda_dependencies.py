"""The Lambda code imports nothing beyond boto3, Powertools and the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ALLOWED = {"boto3", "botocore", "aws_lambda_powertools", "pipeline_common"}
LAMBDA_SOURCES = sorted([*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers").rglob("*.py")])


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_there_is_lambda_code_to_check() -> None:
    assert len(LAMBDA_SOURCES) > 10


@pytest.mark.parametrize("path", LAMBDA_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lambda_code_imports_only_boto3_powertools_and_the_standard_library(path: Path) -> None:
    foreign = imported_packages(path) - ALLOWED - set(sys.stdlib_module_names)
    assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"


def test_the_layer_ships_powertools_and_the_tested_boto3_only() -> None:
    text = (ROOT / "layers/pipeline_common/requirements.txt").read_text()
    pins = dict(line.split("==") for line in text.splitlines() if line and not line.startswith("#"))
    assert set(pins) == {"aws-lambda-powertools[tracer]", "boto3"}
    dev = (ROOT / "requirements/dev.txt").read_text().splitlines()
    assert f"boto3=={pins['boto3']}" in dev
    assert f"aws_lambda_powertools=={pins['aws-lambda-powertools[tracer]']}" in dev
