"""`xgbpipe`: the local cloud's verbs, data preparation and the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from xgbpipe.local import control
from xgbpipe.local.cloud import Ports
from xgbpipe.local.state import CloudState, shell_exports

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
local_app = typer.Typer(help="The whole stack on this machine: no AWS account, no Docker.")
app.add_typer(local_app, name="local")
console = Console()
errors = Console(stderr=True)

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where the local cloud keeps its pid, logs and key.")
]
TemplateOption = Annotated[Path, typer.Option("--template", help="The SAM template to wire.")]


def parse_ports(text: str) -> Ports:
    """`auto` (free ports) or `services=4566,sagemaker=4567,lambda=4568,api=3000` (any subset)."""
    if text == "auto":
        return Ports(0, 0, 0, 0)
    fields = {
        "services": "services",
        "sagemaker": "sagemaker",
        "lambda": "lambda_api",
        "api": "api",
    }
    values: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, port = item.partition("=")
        if name not in fields or not port.isdigit():
            raise typer.BadParameter(
                f"{item!r}: use auto or name=port with names {', '.join(fields)}"
            )
        values[fields[name]] = int(port)
    return Ports(**values)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`Key=Value` pairs, as `sam deploy --parameter-overrides` takes them."""
    overrides = {}
    for item in (word for text in items for word in text.split()):
        key, separator, value = item.partition("=")
        if not separator:
            raise typer.BadParameter(f"{item!r} is not Key=Value")
        overrides[key] = value
    return overrides


def print_state(state: CloudState) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("AWS services (moto)", state.services_url)
    table.add_row("SageMaker + runtime", state.sagemaker_url)
    table.add_row("Lambda Invoke API", state.lambda_url)
    table.add_row("Prediction API", state.api_url)
    table.add_row("Data bucket", state.environment.get("XGBPIPE_BUCKET", ""))
    table.add_row("API key", state.environment.get("XGBPIPE_API_KEY", ""))
    console.print(table)


def fail(error: Exception) -> typer.Exit:
    errors.print(f"[red]error:[/red] {error}")
    return typer.Exit(1)


@local_app.command()
def up(
    host: Annotated[str, typer.Option(help="Address every part listens on.")] = "127.0.0.1",
    ports: Annotated[
        str, typer.Option(help="auto, or services=4566,sagemaker=4567,lambda=4568,api=3000.")
    ] = "",
    parameter_overrides: Annotated[
        list[str] | None,
        typer.Option(help="Template parameters, Key=Value (e.g. GateThreshold=3.0)."),
    ] = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
    template: TemplateOption = Path("template.yaml"),
) -> None:
    """Start the local cloud in the background and print where it listens."""
    try:
        started = control.start(
            template,
            state_dir,
            host=host,
            ports=parse_ports(ports),
            parameter_overrides=parse_overrides(parameter_overrides or []),
        )
    except control.LocalCloudError as error:
        raise fail(error) from error
    if started.already_running:
        console.print(f"The local cloud is already running (pid {started.state.pid}).")
    else:
        console.print(f"[green]The local cloud is up[/green] (pid {started.state.pid}).")
    print_state(started.state)
    console.print(
        f'Point boto3 and the AWS CLI at it: eval "$(xgbpipe local env)"'
        f" (or source {state_dir / 'env.sh'}). Stop it: xgbpipe local down"
    )


@local_app.command()
def down(state_dir: StateDir = control.DEFAULT_STATE_DIR) -> None:
    """Stop the local cloud and every process it started."""
    if control.stop(state_dir):
        console.print("The local cloud is stopped.")
    else:
        console.print("The local cloud was not running.")


@local_app.command()
def status(state_dir: StateDir = control.DEFAULT_STATE_DIR) -> None:
    """Say whether the local cloud runs, and where."""
    try:
        state = control.running_state(state_dir)
    except control.LocalCloudError as error:
        console.print(str(error))
        raise typer.Exit(1) from error
    console.print(f"The local cloud is running (pid {state.pid}).")
    print_state(state)


@local_app.command()
def env(state_dir: StateDir = control.DEFAULT_STATE_DIR) -> None:
    """Print the shell exports for the local cloud: eval "$(xgbpipe local env)"."""
    try:
        state = control.running_state(state_dir)
    except control.LocalCloudError as error:
        raise fail(error) from error
    typer.echo(shell_exports(state.environment), nl=False)


@local_app.command()
def invoke(
    function: Annotated[str, typer.Argument(help="Logical id or functions/<name> directory.")],
    event: Annotated[Path, typer.Option(help="The event, a JSON file (see events/).")],
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Run one function once with its template environment against the local cloud."""
    from xgbpipe.local.invoke import invoke_once

    try:
        payload: Any = json.loads(event.read_text())
        invocation = invoke_once(control.running_state(state_dir), function, payload)
    except (control.LocalCloudError, OSError, ValueError) as error:
        raise fail(error) from error
    typer.echo(json.dumps(invocation.payload, indent=2))
    if invocation.failed:
        raise typer.Exit(1)


@app.command()
def prepare(
    raw_csv: Annotated[Path, typer.Argument(help="Raw CSV with a header row.")],
    out_dir: Annotated[Path, typer.Argument(help="Where train/validation/test.csv go.")],
    label: Annotated[str | None, typer.Option(help="Label column; default the last.")] = None,
) -> None:
    """Prepare raw tabular data for the stack: numeric, label first, no header, split 70/30."""
    from xgbpipe.prepare import prepare as prepare_data

    try:
        prepared = prepare_data(raw_csv, out_dir, label)
    except (OSError, ValueError) as error:
        raise fail(error) from error
    for name, path in prepared.files().items():
        console.print(f"{name}: {path} ({sum(1 for _ in path.open())} rows)")


@app.command()
def demo(
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
    template: TemplateOption = Path("template.yaml"),
) -> None:
    """The whole chain on the local cloud with the sample data, ending in predictions."""
    from xgbpipe.demo import DemoError, run_demo

    try:
        run_demo(console, template, state_dir)
    except (control.LocalCloudError, DemoError) as error:
        raise fail(error) from error


if __name__ == "__main__":
    app()
