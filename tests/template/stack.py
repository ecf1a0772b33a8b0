"""Where the stack's files are and how the tests read template.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SAM_VENV = ROOT / ".venv-sam"
SDK_VENV = ROOT / ".venv-sdk"
REGION = "us-east-1"
CODE_PLACEHOLDER = "s3://code-placeholder"

Template = dict[str, Any]


class NoManagedPolicies:
    """Stands in for SAM's IAM lookup: the stack names no managed policy by its short name."""

    def load(self) -> dict[str, str]:
        return {}


def load_template() -> Template:
    # The JSON round trip turns cfn-lint's position-carrying nodes into plain dicts and strings.
    return json.loads(json.dumps(load_cfn_yaml(str(TEMPLATE_PATH))))


def with_code_placeholders(template: Template) -> Template:
    """CodeUri and ContentUri as `sam package` leaves them: the transform wants S3 locations."""
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"{CODE_PLACEHOLDER}/{properties[key]}"
    return template


def resources_of_type(template: Template, resource_type: str) -> dict[str, Any]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def tool(venv: Path, name: str) -> Path:
    executable = venv / "bin" / name
    if not executable.exists():
        pytest.fail(f"{executable} is missing: run `make tools` to create the tool environments")
    return executable
