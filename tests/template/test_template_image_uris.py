"""The template's XGBoost image URI is the SageMaker SDK v3's in every region, for every version.

The SDK lives in its own environment (.venv-sdk), so it runs in a subprocess; it needs no network
for this, and the subprocess is given a dead proxy and no instance metadata to keep it that way.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from typing import Any

import botocore.loaders
import pytest

from tests.template.stack import ROOT, SDK_VENV, Template, tool

SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@cache
def partition_of(region: str) -> dict[str, Any]:
    """The partition botocore places a region in; its dnsSuffix is CloudFormation's URLSuffix."""
    partitions = botocore.loaders.create_loader().load_data("partitions")["partitions"]
    for partition in partitions:
        if region in partition["regions"] or re.match(partition["regionRegex"], region):
            return partition
    raise LookupError(f"botocore knows no partition for {region}")


class StackResolver:
    """Evaluates the intrinsic functions the image expressions use, as CloudFormation would."""

    def __init__(self, template: Template, region: str, parameters: dict[str, str]) -> None:
        partition = partition_of(region)
        self.mappings = template["Mappings"]
        self.names = {
            "AWS::Region": region,
            "AWS::Partition": partition["id"],
            "AWS::URLSuffix": partition["outputs"]["dnsSuffix"],
            **parameters,
        }

    def resolve(self, node: Any, local_names: dict[str, str] | None = None) -> str:
        if isinstance(node, str):
            return node
        ((function, argument),) = node.items()
        if function == "Ref":
            return self.names[argument]
        if function == "Fn::FindInMap":
            mapping, key, attribute = (self.resolve(part) for part in argument)
            return str(self.mappings[mapping][key][attribute])
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            names = {**self.names, **{k: self.resolve(v) for k, v in variables.items()}}
            return SUB_VARIABLE.sub(lambda match: names[match.group(1)], text)
        raise NotImplementedError(f"{function} is not used by the image expressions")


def xgboost_versions(template: Template) -> list[str]:
    return [str(version) for version in template["Parameters"]["XGBoostVersion"]["AllowedValues"]]


def template_image_uri(template: Template, region: str, version: str) -> str:
    expression = template["Globals"]["Function"]["Environment"]["Variables"]["XGBOOST_IMAGE_URI"]
    return StackResolver(template, region, {"XGBoostVersion": version}).resolve(expression)


def image_pull_resource(template: Template) -> Any:
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    statements = [
        statement
        for policy in role["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "ecr:BatchGetImage" in statement["Action"]
    ]
    (statement,) = statements
    return statement["Resource"]


@pytest.fixture(scope="module")
def sdk_image_uris(template: Template, tool_env: dict[str, str]) -> dict[str, dict[str, str]]:
    result = subprocess.run(
        [tool(SDK_VENV, "python"), "tools/xgboost_image_uris.py", *xgboost_versions(template)],
        cwd=ROOT,
        env={**tool_env, **OFFLINE},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    uris: dict[str, dict[str, str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return uris


def test_versions_offered_are_the_two_the_pipeline_supports(template: Template) -> None:
    parameter = template["Parameters"]["XGBoostVersion"]

    assert xgboost_versions(template) == ["3.0-5", "1.7-1"]
    assert parameter["Default"] == "3.0-5"


def test_image_map_covers_exactly_the_regions_the_sdk_knows(
    template: Template, sdk_image_uris: dict[str, dict[str, str]]
) -> None:
    mapped = set(template["Mappings"]["XGBoostImageAccounts"])
    known = set(sdk_image_uris)

    assert len(sdk_image_uris) > 30
    assert mapped == known, (
        f"missing: {sorted(known - mapped)}, extra: {sorted(mapped - known)}"
        "; regenerate with `.venv-sdk/bin/python tools/xgboost_image_uris.py --mapping 3.0-5 1.7-1`"
    )


def test_image_uri_equals_the_sdks_in_every_region_for_every_version(
    template: Template, sdk_image_uris: dict[str, dict[str, str]]
) -> None:
    # Given the SDK's URI for each region (China and the ISO partitions have their own domains)
    expected = {
        (region, version): uri
        for region, uris in sdk_image_uris.items()
        for version, uri in uris.items()
    }

    # When the template's expression is evaluated there
    built = {key: template_image_uri(template, *key) for key in expected}

    # Then every URI is the SDK's
    mismatches = {key: (built[key], uri) for key, uri in expected.items() if built[key] != uri}
    assert not mismatches, mismatches
    assert {version for _, version in expected} == set(xgboost_versions(template))


def test_execution_role_may_pull_exactly_that_image(
    template: Template, sdk_image_uris: dict[str, dict[str, str]]
) -> None:
    resource = image_pull_resource(template)

    for region, uris in sdk_image_uris.items():
        for uri in uris.values():
            image = re.fullmatch(r"(\d+)\.dkr\.ecr\.[^/]+/([^:]+):.+", uri)
            assert image, uri
            account, repository = image.groups()
            arn = StackResolver(template, region, {}).resolve(resource)
            partition = partition_of(region)["id"]
            assert arn == f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"
