"""`xgbpipe`: prepare, upload, watch, predict, report, roll back and delete, on AWS or locally."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from xgbpipe import client
from xgbpipe.local import control
from xgbpipe.local.cloud import Ports
from xgbpipe.local.state import CloudState, shell_exports

if TYPE_CHECKING:  # pandas behind it: imported by the verbs that need it, not at start-up
    from xgbpipe.prepare import Schema

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
    # One line, however narrow the terminal: scripts grep it, people read it.
    errors.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
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


@local_app.command("status")
def local_status(state_dir: StateDir = control.DEFAULT_STATE_DIR) -> None:
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


@local_app.command()
def fault(
    target: Annotated[
        str | None,
        typer.Argument(
            help="service.Operation of a function's AWS call (sagemaker.CreateTrainingJob), or "
            "TrainingJob, TransformJob, Endpoint, Invocation; none lists the armed faults."
        ),
    ] = None,
    effect: Annotated[
        str | None,
        typer.Option(help="error or crash for calls (pause holds one for 120 s); fail for others."),
    ] = None,
    function: Annotated[
        str | None, typer.Option(help="Only this function's calls (logical id or directory).")
    ] = None,
    times: Annotated[int, typer.Option(help="How many times it fires.")] = 1,
    code: Annotated[str, typer.Option(help="The AWS error code of an error.")] = (
        "ThrottlingException"
    ),
    status: Annotated[int, typer.Option(help="The HTTP status of an error.")] = 400,
    message: Annotated[str, typer.Option(help="The error's or failure's message.")] = (
        "injected by xgbpipe local fault"
    ),
    clear: Annotated[bool, typer.Option("--clear", help="Disarm every fault.")] = False,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Arm a fault in the running local cloud, to see how the stack copes (see README)."""
    from xgbpipe.local.faults import SAGEMAKER_TARGETS, Fault, FaultError, FaultFile
    from xgbpipe.local.wiring import WiringError, load_wiring

    try:
        state = control.running_state(state_dir)
    except control.LocalCloudError as error:
        raise fail(error) from error
    faults = FaultFile.in_state_dir(state_dir)
    if clear:
        faults.clear()
    if target is None:
        for armed in faults.armed():
            console.print(
                f"{armed.id}  {armed.effect} {armed.target}"
                + (f" in {armed.function}" if armed.function else "")
                + f"  fired {armed.fired} of {armed.times}",
                soft_wrap=True,
            )
        return
    try:
        if function is not None:
            wiring = load_wiring(
                Path(state.template), state.parameter_overrides, queue_url_base=state.services_url
            )
            function = wiring.function(function).name
        chosen: Any = effect or ("fail" if target in SAGEMAKER_TARGETS else "error")
        armed = faults.arm(
            Fault(
                target,
                chosen,
                times=times,
                function=function,
                code=code,
                message=message,
                status=status,
            )
        )
    except (FaultError, WiringError) as error:
        raise fail(error) from error
    console.print(f"Armed fault {armed.id}: {armed.effect} {armed.target}, {armed.times} time(s).")


@app.command()
def prepare(
    raw_csv: Annotated[Path, typer.Argument(help="Raw CSV with a header row.")],
    out_dir: Annotated[
        Path, typer.Argument(help="Where train/validation/test.csv and schema.json go.")
    ] = Path("prepared"),
    label: Annotated[str | None, typer.Option(help="Label column; default the last.")] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="XGBoost objective; default regression, or classification for text."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the splits.")] = 42,
) -> None:
    """Prepare raw tabular data like the seed: one-hot text columns, label first, 70/30 splits."""
    from xgbpipe.prepare import PrepareError
    from xgbpipe.prepare import prepare as prepare_data

    try:
        prepared = prepare_data(raw_csv, out_dir, label, objective, seed)
    except (PrepareError, OSError) as error:
        raise fail(error) from error
    for name, path in prepared.files().items():
        with path.open() as lines:
            console.print(f"{name}: {path} ({sum(1 for _ in lines)} rows)")
    schema = prepared.schema
    console.print(
        f"schema.json: label {schema.label}, objective {schema.objective}, "
        f"{len(schema.features)} features ({prepared.schema_path})"
    )
    if prepared.hyperparameters:
        console.print(f"hyperparameters.json: {prepared.hyperparameters}")
    console.print(f"Next: xgbpipe upload {out_dir} --model NAME", soft_wrap=True)


@app.command()
def demo(
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
    template: TemplateOption = Path("template.yaml"),
) -> None:
    """The whole chain on the local cloud with the sample data, ending in predictions."""
    from xgbpipe.demo import DemoError, run_demo

    try:
        run_demo(console, template, state_dir)
    except (control.LocalCloudError, client.StackError, DemoError) as error:
        raise fail(error) from error


# ------------------------------------------------------------- the client's verbs, any stack

StackOption = Annotated[
    str | None,
    typer.Option(
        "--stack",
        envvar="XGBPIPE_STACK",
        help="A deployed stack's name; without it, the running local cloud.",
    ),
]
LocalOption = Annotated[bool, typer.Option("--local", help="Use the local cloud.")]
ProfileOption = Annotated[str | None, typer.Option(help="AWS profile (deployed stacks).")]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (deployed stacks).")]


def connect(
    stack: str | None, local: bool, profile: str | None, region: str | None, state_dir: Path
) -> client.Stack:
    try:
        return client.find_stack(stack, local, state_dir, profile, region)
    except client.StackError as error:
        raise fail(error) from error


@app.command()
def upload(
    directory: Annotated[
        Path, typer.Argument(help="train/validation/test.csv (from prepare), or folders of parts.")
    ],
    model: Annotated[str, typer.Option(help="The model's name: datasets/<model>/.")],
    wait: Annotated[bool, typer.Option(help="Wait for the run the drop starts.")] = True,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Drop a prepared data set into the stack's bucket; prints the run it starts."""
    target = connect(stack, local, profile, region, state_dir)
    try:
        client.check_model_name(model)  # before the folder: the name is the first thing to fix
        files = client.drop_files(directory)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as progress:
            tasks = {
                name: progress.add_task(name, total=path.stat().st_size)
                for name, path in files.items()
            }
            drop = client.upload(
                target, model, files, lambda name, sent: progress.advance(tasks[name], sent)
            )
        console.print(f"Uploaded {', '.join(files)} to s3://{target.bucket}/datasets/{model}/")
        for name in drop.leftovers:
            console.print(
                f"[yellow]note:[/yellow] datasets/{model}/{name} from an earlier upload applies "
                "to this run too; upload your own or delete it to change that"
            )
        if not wait:
            return
        run = client.run_of_drop(target, model, drop)
    except client.StackError as error:
        raise fail(error) from error
    console.print(f"Run [bold]{run['run_id']}[/bold]: {run.get('stage')}, {run.get('status')}")
    console.print(f"Follow it: xgbpipe status {model} --watch")


@app.command()
def status(
    model: Annotated[str | None, typer.Argument(help="A model; without it, all models.")] = None,
    watch: Annotated[bool, typer.Option(help="Follow the latest run until it ends.")] = False,
    run: Annotated[str | None, typer.Option(help="The run to follow; default the latest.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds --watch waits.")] = 3600.0,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Runs and their stages; --watch follows one until it ends (non-zero unless deployed)."""
    target = connect(stack, local, profile, region, state_dir)
    try:
        if model is None:
            if watch:
                raise client.StackError("--watch follows one model's run: give MODEL")
            show_models(client.list_models(target))
            return
        if not watch:
            show_runs(model, client.list_runs(target, model))
            return
        item = client.model_item(target, model)
        run_id = run or (item or {}).get("latest_run_id")
        if not run_id:
            raise client.StackError(f"model {model} has no runs; upload a drop first")
        ended = follow(target, model, str(run_id), timeout)
    except client.StackError as error:
        raise fail(error) from error
    if ended.get("status") != "deployed":
        raise typer.Exit(1)


def show_models(models: list[dict[str, Any]]) -> None:
    table = Table(title="Models")
    for column in ("model", "live version", "live metrics", "latest run", "deploying"):
        table.add_column(column)
    for item in models:
        live = item.get("live") or {}
        table.add_row(
            str(item["model"]),
            str(live.get("run_id", "-")),
            client.describe_metrics(live.get("metrics")),
            str(item.get("latest_run_id", "-")),
            str(item.get("deploying_run_id", "")),
        )
    console.print(table if models else "No models yet: xgbpipe upload DIR --model NAME")


def show_runs(model: str, runs: list[dict[str, Any]]) -> None:
    if not runs:
        raise client.StackError(f"there is no model named {model} (or it has no runs yet)")
    table = Table(title=f"Runs of {model}, newest first")
    for column in ("run", "stage", "status", "test metrics", "started", "reason"):
        table.add_column(column, overflow="fold")
    for item in runs:
        table.add_row(
            str(item["run_id"]),
            str(item.get("stage", "")),
            str(item.get("status", "")),
            client.describe_metrics(item.get("metrics")),
            str(item.get("created_at", "")),
            str(item.get("reason", "")),
        )
    console.print(table)


def follow(target: client.Stack, model: str, run_id: str, timeout: float) -> dict[str, Any]:
    """A live view of the run's stages until it ends."""
    state: dict[str, Any] = {}

    def render() -> Table:
        table = Table(title=f"{model} run {run_id}", show_header=False, box=None)
        stage = state.get("stage", "validating")
        reached = client.STAGES.index(stage) if stage in client.STAGES else 0
        for index, name in enumerate(client.STAGES[:-1]):
            mark = "[green]done[/green]" if index < reached else ""
            if index == reached and stage != "done":
                mark = "[yellow]running...[/yellow]"
            table.add_row(name, mark)
        if stage == "done":
            colour = "green" if state.get("status") == "deployed" else "red"
            table.add_row("result", f"[{colour}]{state.get('status')}[/{colour}]")
            table.add_row("reason", str(state.get("reason", "")))
            if state.get("metrics"):
                table.add_row("test metrics", client.describe_metrics(state["metrics"]))
        return table

    with Live(render(), console=console, refresh_per_second=4, transient=False) as live:

        def on_change(run: dict[str, Any]) -> None:
            state.clear()
            state.update(run)
            live.update(render())

        ended = client.watch(target, model, run_id, on_change, timeout)
    console.line()
    return ended


def load_schema(target: client.Stack, model: str, path: Path | None) -> Schema | None:
    """The schema given with --schema, else the one uploaded beside the model's data, if any."""
    from xgbpipe.prepare import Schema

    if path is not None:
        return Schema.load(path)
    key = f"datasets/{model}/schema.json"
    uploaded = client.read_object(target, key)
    return Schema.from_json(uploaded, key) if uploaded is not None else None


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="The model to ask.")],
    source: Annotated[
        str, typer.Argument(help="CSV or JSON rows, JSON records; a file or - for stdin.")
    ] = "-",
    schema: Annotated[
        Path | None,
        typer.Option(help="schema.json for named features; default the model's uploaded one."),
    ] = None,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Predictions from the live model, one line per row; large inputs go in batches."""
    from xgbpipe.prepare import PrepareError

    target = connect(stack, local, profile, region, state_dir)
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as error:
        raise fail(error) from error

    def encode(records: list[dict[str, Any]]) -> list[list[float | None]]:
        chosen = load_schema(target, model, schema)
        if chosen is None:
            raise client.StackError(
                f"model {model} has no schema.json in its drop; pass --schema PATH"
            )
        live = (client.model_item(target, model) or {}).get("live") or {}
        if live and len(chosen.features) != int(live.get("num_features", 0)):
            raise client.StackError(
                f"the schema names {len(chosen.features)} features but the live model of {model} "
                f"takes {live.get('num_features')}; pass the schema of its drop with --schema"
            )
        return chosen.encode(records)

    try:
        rows = client.read_rows(text, encode)
        predictions = client.predict(target, model, rows)
    except (client.StackError, PrepareError) as error:
        raise fail(error) from error
    for value in predictions:
        typer.echo(",".join(map(str, value)) if isinstance(value, list) else str(value))


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="The run id (xgbpipe status MODEL lists them).")],
    model: Annotated[str | None, typer.Option(help="The run's model (faster lookup).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where the files go; default report-RUN/.")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option(help="schema.json naming the features; default the drop's.")
    ] = None,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """A PNG and a self-contained HTML of how good the run's model is."""
    from xgbpipe.prepare import PrepareError
    from xgbpipe.report import ReportError, ReportInputs, write_report

    target = connect(stack, local, profile, region, state_dir)
    out_dir = out or Path(f"report-{run}")
    try:
        record = client.find_run(target, run, model)
        files = client.download_run(target, record, out_dir / "data")
        chosen = load_schema(target, str(record["model"]), schema)
        names = chosen.features if chosen else None
        if names is not None and len(names) != int(record.get("num_features", 0)):
            names = None  # the drop's schema belongs to another shape of data
        written = write_report(
            ReportInputs(
                title=f"{record['model']}, run {run}",
                joined_output=files.joined_output,
                model_file=files.model_file,
                objective=str(record.get("objective", "reg:squarederror")),
                num_features=int(record["num_features"]),
                metrics=record.get("metrics") or {},
                train=files.train,
                validation=files.validation,
                feature_names=names,
                num_class=record.get("num_class"),
            ),
            out_dir,
        )
    except (client.StackError, PrepareError, ReportError) as error:
        raise fail(error) from error
    console.print(f"Report of run {run}: {written.png} and {written.html}")


@app.command()
def versions(
    model: Annotated[str, typer.Argument(help="The model whose versions to list.")],
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Every version the model has served, newest first, and when each went live."""
    target = connect(stack, local, profile, region, state_dir)
    try:
        listed = target.api.versions(model)
    except client.StackError as error:
        raise fail(error) from error
    table = Table(title=f"Versions of {model}")
    for column in ("version", "first deployed", "metrics"):
        table.add_column(column, no_wrap=column != "metrics")
    for version in listed["versions"]:
        table.add_row(
            version["version"] + (" (live)" if version["live"] else ""),
            str(version.get("deployed_at", "")),
            client.describe_metrics(version.get("metrics")),
        )
    console.print(table)
    for entry in listed["history"]:
        how = ""
        if entry.get("via") == "rollback":
            back_from = entry.get("rolled_back_from")
            how = f", rolled back from {back_from}" if back_from else ", put back on request"
        console.print(f"{entry['at']}  {entry['version']} went live{how}", soft_wrap=True)


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="The model to roll back.")],
    to: Annotated[
        str | None, typer.Option("--to", help="The version to serve; default the previous one.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint serves it.")] = True,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Put an earlier version back on the model's endpoint (or a new one, if it was deleted)."""
    target = connect(stack, local, profile, region, state_dir)
    try:
        started = target.api.rollback(model, to)
        console.print(
            f"Rolling {model} back to version {started['version']}"
            + (f" from {started['from']}" if started.get("from") else "")
            + f" on endpoint {started['endpoint']}.",
            soft_wrap=True,
        )
        if wait:
            client.wait_for_rollback(target, model, str(started["version"]))
    except client.StackError as error:
        raise fail(error) from error
    if wait:
        console.print(f"Version {started['version']} of {model} is live.")


@app.command()
def delete(
    model: Annotated[str, typer.Argument(help="The model whose endpoint goes.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    stack: StackOption = None,
    local: LocalOption = False,
    profile: ProfileOption = None,
    region: RegionOption = None,
    state_dir: StateDir = control.DEFAULT_STATE_DIR,
) -> None:
    """Delete the model's endpoint (the seed's last step); its versions and data stay."""
    target = connect(stack, local, profile, region, state_dir)
    if not yes:
        console.print(
            f"This deletes the endpoint of {model}. Its versions and data stay: "
            f"`xgbpipe rollback {model}` serves the last one again.",
            soft_wrap=True,
        )
        if not typer.confirm("Delete?"):
            raise typer.Exit(1)
    try:
        deleted = target.api.delete(model)
    except client.StackError as error:
        raise fail(error) from error
    console.print(
        f"Deleted endpoint {deleted['endpoint']}; "
        "predictions answer 404 until a rollback or a new drop."
    )


if __name__ == "__main__":
    app()
