"""The template passes both linters the way CI and `make validate` run them."""

from __future__ import annotations

import subprocess

from cfnlint.api import REGIONS, ManualArgs, lint_file

from tests.template.stack import ROOT, SAM_VENV, TEMPLATE_PATH, Template, tool


def test_cfn_lint_finds_nothing_in_any_region_the_stack_supports(template: Template) -> None:
    # Given every region the image map covers that cfn-lint knows, informational checks included
    regions = sorted(set(template["Mappings"]["XGBoostImageAccounts"]) & set(REGIONS))

    # When cfn-lint runs
    matches = lint_file(TEMPLATE_PATH, ManualArgs(regions=regions, include_checks=["I"]))

    # Then it reports nothing
    assert not matches, "\n".join(str(match) for match in matches)


def test_sam_validate_lint_passes(tool_env: dict[str, str]) -> None:
    result = subprocess.run(
        [
            tool(SAM_VENV, "sam"),
            "validate",
            "--lint",
            "--region",
            "us-east-1",
            "--template-file",
            str(TEMPLATE_PATH),
        ],
        cwd=ROOT,
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
