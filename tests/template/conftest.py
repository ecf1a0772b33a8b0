"""Fixtures: the template as written and as the SAM transform expands it, and the tools' env."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from samtranslator.translator.transform import transform

from tests.template.stack import (
    REGION,
    NoManagedPolicies,
    Template,
    load_template,
    with_code_placeholders,
)


@pytest.fixture(scope="session")
def template() -> Template:
    return load_template()


@pytest.fixture(scope="session")
def expanded_template() -> Template:
    with pytest.MonkeyPatch.context() as patch:
        # The transform reads the region the way boto3 does; pin it so the host's profile is moot.
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.delenv("AWS_REGION", raising=False)
        patch.delenv("AWS_PROFILE", raising=False)
        return transform(with_code_placeholders(load_template()), {}, NoManagedPolicies())


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """The environment the tool venvs run in: the SAM CLI needs a python3.12 first on PATH."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
    }
