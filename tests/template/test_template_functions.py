"""Every function the template declares has its code, and the code's configuration is all set."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pipeline_common.config import ENVIRONMENT_VARIABLES

from tests.template.stack import ROOT, Template, load_template, resources_of_type

FUNCTIONS = resources_of_type(load_template(), "AWS::Serverless::Function")
POWERTOOLS_VARIABLES = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}


def top_level_functions(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(), filename=str(module))
    return {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_handler_module_defines_the_handler_function(logical_id: str) -> None:
    properties = FUNCTIONS[logical_id]["Properties"]
    code_dir = ROOT / properties["CodeUri"]
    module_name, function_name = properties["Handler"].rsplit(".", 1)
    module = code_dir.joinpath(*module_name.split(".")).with_suffix(".py")

    assert code_dir.parent == ROOT / "functions", f"{logical_id}: code belongs in functions/<name>"
    assert module.is_file(), f"{logical_id}: {module.relative_to(ROOT)} does not exist"
    assert function_name in top_level_functions(module), (
        f"{logical_id}: {module.relative_to(ROOT)} has no top-level `def {function_name}`"
    )


def test_every_function_package_is_deployed() -> None:
    deployed = {ROOT / function["Properties"]["CodeUri"] for function in FUNCTIONS.values()}
    packages = {path.parent for path in (ROOT / "functions").glob("*/handler.py")}

    assert packages <= deployed, f"not in template.yaml: {sorted(map(str, packages - deployed))}"


def test_layer_is_built_from_the_shared_code_for_the_functions_runtime(template: Template) -> None:
    ((layer_id, layer),) = resources_of_type(template, "AWS::Serverless::LayerVersion").items()
    content = ROOT / layer["Properties"]["ContentUri"]
    runtime = template["Globals"]["Function"]["Runtime"]

    assert (content / "pipeline_common" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()
    # Built by its Makefile for the functions' runtime and architecture, compiled to bytecode.
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    build = (content / "Makefile").read_text()
    assert f"build-{layer_id}:" in build
    assert f"--python-version {runtime.removeprefix('python')}" in build
    assert "manylinux2014_aarch64" in build
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert "compileall" in build
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert (
        layer["Properties"]["CompatibleArchitectures"]
        == template["Globals"]["Function"]["Architectures"]
    )


def test_globals_set_exactly_the_variables_the_code_reads(template: Template) -> None:
    variables = set(template["Globals"]["Function"]["Environment"]["Variables"])

    assert variables - POWERTOOLS_VARIABLES == set(ENVIRONMENT_VARIABLES)
    assert variables >= POWERTOOLS_VARIABLES


def test_no_function_overrides_the_shared_environment() -> None:
    overriding = [
        logical_id
        for logical_id, function in FUNCTIONS.items()
        if "Environment" in function["Properties"]
    ]

    assert not overriding, f"set variables in Globals so every function shares them: {overriding}"


def test_functions_are_traced_with_powertools_settings(template: Template) -> None:
    globals_ = template["Globals"]["Function"]

    assert globals_["Tracing"] == "Active"
    assert globals_["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "xgbpipe"
