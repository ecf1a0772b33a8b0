"""Deploy settings: dev and prod can share an account, and hold nothing of anyone's."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from tests.template.stack import ROOT, Template

ENVIRONMENTS = ("default", "prod")


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def parameter_overrides(deploy: dict[str, Any]) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', deploy["parameter_overrides"]))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_deploys_with_sams_own_bucket_and_iam_capability(
    samconfig: dict[str, Any], environment: str
) -> None:
    deploy = samconfig[environment]["deploy"]["parameters"]

    assert deploy["resolve_s3"] is True
    assert "CAPABILITY_IAM" in deploy["capabilities"].split()
    assert samconfig[environment]["global"]["parameters"]["stack_name"]


def test_prod_asks_before_changing_anything(samconfig: dict[str, Any]) -> None:
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_environments_never_react_to_each_others_jobs(
    samconfig: dict[str, Any], template: Template
) -> None:
    pattern = template["Parameters"]["JobPrefix"]["AllowedPattern"]
    prefixes = [
        parameter_overrides(samconfig[environment]["deploy"]["parameters"])["JobPrefix"]
        for environment in ENVIRONMENTS
    ]

    assert len(set(prefixes)) == len(prefixes)
    assert all(re.fullmatch(pattern, prefix) for prefix in prefixes)


def test_nothing_account_or_region_specific() -> None:
    text = (ROOT / "samconfig.toml").read_text()

    assert not re.search(r"\b\d{12}\b", text), "an AWS account id"
    assert not re.search(r"^\s*(region|s3_bucket|profile)\s*=", text, re.MULTILINE)
