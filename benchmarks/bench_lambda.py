"""Lambda cost: each function's deployment size after `sam build`, and its cold import time.

`sam build` (the project's SAM CLI, no cache) writes into a temporary directory, so the repo's
.aws-sam is left alone. A function's size is its build directory zipped the way `sam deploy`
zips it, plus its layers' zips; the unzipped total is what counts toward Lambda's 250 MB limit.

Cold import is `import handler` in a fresh interpreter that sees only the stdlib, the function's
build directory and its layers' `python/` folders, as Lambda lays them out. It runs with `-B`:
Lambda's /var/task and /opt are read-only, so a cold start can use only the bytecode the build
shipped (the layer's Makefile compiles it) and writes none. The environment is a Lambda's:
LAMBDA_TASK_ROOT set makes Powertools' Tracer live and patch the libraries X-Ray instruments, as it
does on Lambda; at import the X-Ray SDK only opens a UDP socket and sends nothing. The baseline is
the same child importing boto3 and building Powertools' Logger, Tracer and Metrics, as the shared
layer does. Runs alternate between the cases so that load on the machine weighs on all of them
alike, and each note gives the median CPU time too: importing is CPU-bound, so on a busy machine
the wall time also counts waiting for a core, the CPU time hardly.

The layer is built for arm64; on another architecture its one extension (wrapt) does not load
and wrapt's pure-Python fallback is imported instead.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cfnlint.decode.cfn_yaml import load as load_cfn_yaml

from benchmarks import ROOT, Measurement, measure
from xgbpipe.local.wiring import load_wiring

NAME = "Lambda cost"
RUNS = int(os.environ.get("BENCH_LAMBDA_RUNS", "7"))
TEMPLATE = ROOT / "template.yaml"
PYTHON = ROOT / ".venv" / "bin" / "python"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
REGION = "us-east-1"
MB = 2**20
# Function and layers together, unzipped: 262,144,000 bytes.
UNZIPPED_LIMIT = 250 * MB
BASELINE_CODE = """import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
Logger(), Tracer(), Metrics()
"""
# Peak memory is VmHWM: a child's ru_maxrss still counts the RSS of the parent it was forked from.
CHILD = """import sys, time
sys.path[:0] = sys.argv[2:]
start, start_cpu = time.perf_counter(), time.process_time()
exec(sys.argv[1])
elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
with open("/proc/self/status") as status:
    print(elapsed * 1000, cpu * 1000, status.read().split("VmHWM:")[1].split()[0])
"""


@dataclass(frozen=True)
class _Case:
    name: str
    code: str
    path: tuple[Path, ...]
    env: dict[str, str]
    note: str = ""


def _sam_build(build_dir: Path) -> None:
    if not SAM.exists():
        raise RuntimeError(f"{SAM} not found: run `make tools` to install the SAM CLI")
    if not PYTHON.exists():
        raise RuntimeError(f"{PYTHON} not found: run `make venv`")
    completed = subprocess.run(
        [
            str(SAM),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(build_dir),
            "--no-cached",
            "--parallel",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        # Outside the repo, so nothing sam writes next to its working directory lands there.
        cwd=build_dir.parent,
        env={
            **os.environ,
            # sam build runs the first python3.12 on PATH, and a pyenv shim there may fail.
            "PATH": f"{PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SAM_CLI_TELEMETRY": "0",
        },
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()
        raise RuntimeError(f"sam build failed: {output[-2000:]}")


def _layer_build_dirs(build_dir: Path) -> dict[Path, Path]:
    """Each layer's source directory -> its build directory (sam names it by logical id)."""
    resources = load_cfn_yaml(str(TEMPLATE))["Resources"]
    return {
        (ROOT / resource["Properties"]["ContentUri"]).resolve(): build_dir / logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }


def _sizes(directory: Path) -> tuple[int, int]:
    """Zipped and unzipped bytes of a directory's files, zipped as `sam deploy` zips them."""
    buffer = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory))
                unzipped += path.stat().st_size
    return buffer.getbuffer().nbytes, unzipped


def _size(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size / 1024:.1f} KB"


def _cases(build_dir: Path) -> list[_Case]:
    layers = _layer_build_dirs(build_dir)
    layer_sizes = {layer: _sizes(layer) for layer in layers.values()}
    cases = []
    for function in load_wiring(TEMPLATE, region=REGION).functions:
        task_root = build_dir / function.logical_id
        function_layers = [layers[source.resolve()] for source in function.layer_dirs]
        zipped, unzipped = _sizes(task_root)
        layers_zipped = sum(layer_sizes[layer][0] for layer in function_layers)
        unzipped += sum(layer_sizes[layer][1] for layer in function_layers)
        module = function.handler.rpartition(".")[0]
        cases.append(
            _Case(
                name=f"cold import of {function.logical_id}",
                code=f"import {module}",
                path=(task_root, *(layer / "python" for layer in function_layers)),
                env={
                    **function.environment,
                    "LAMBDA_TASK_ROOT": str(task_root),
                    "_HANDLER": function.handler,
                    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                    "AWS_LAMBDA_FUNCTION_NAME": function.name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                    "AWS_REGION": REGION,
                    "AWS_DEFAULT_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": "benchmark",
                    "AWS_SECRET_ACCESS_KEY": "benchmark",
                    "AWS_SESSION_TOKEN": "benchmark",
                    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                },
                note=(
                    f"zip {_size(zipped)} + layer zip {_size(layers_zipped)}; unzipped "
                    f"{_size(unzipped)} of {UNZIPPED_LIMIT // MB} MB"
                ),
            )
        )
    first = cases[0]
    baseline = _Case(
        name="cold import of boto3 + Powertools",
        code=BASELINE_CODE,
        path=first.path,
        env=first.env,
        note="boto3, and a Logger, Tracer and Metrics built, from the layer",
    )
    return [baseline, *cases]


def _import_once(case: _Case) -> tuple[float, float, float]:
    """Wall and CPU milliseconds of the case's import in a fresh interpreter, and its peak MB."""
    completed = subprocess.run(
        # -I -S: no site-packages, no PYTHON* variables; the imports come from the build only.
        [str(PYTHON), "-I", "-S", "-B", "-c", CHILD, case.code, *map(str, case.path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=case.env,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{case.name} failed: {completed.stderr.strip()[-2000:]}")
    elapsed, cpu, peak_kib = completed.stdout.split()[-3:]
    return float(elapsed), float(cpu), int(peak_kib) / 1024


def _summary(
    case: _Case,
    samples: list[tuple[float, float, float]],
    baseline: Measurement | None = None,
    baseline_cpu: float | None = None,
) -> Measurement:
    wall, cpu_samples, peak_mb = zip(*samples, strict=True)
    cpu = statistics.median(cpu_samples)
    cpu_note = f"CPU {cpu:.0f} ms" + (f", x{cpu / baseline_cpu:.2f}" if baseline_cpu else "")
    return measure(
        NAME, case.name, wall, f"{cpu_note}; {case.note}", baseline=baseline, peak_mb=max(peak_mb)
    )


def run() -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-lambda-") as tmp:
        build_dir = Path(tmp) / "build"
        _sam_build(build_dir)
        cases = _cases(build_dir)
        results: dict[str, list[tuple[float, float, float]]] = {case.name: [] for case in cases}
        for _ in range(RUNS):
            for case in cases:
                results[case.name].append(_import_once(case))

    baseline_case, *function_cases = cases
    baseline = _summary(baseline_case, results[baseline_case.name])
    baseline_cpu = statistics.median(cpu for _, cpu, _ in results[baseline_case.name])
    return [
        baseline,
        *(_summary(case, results[case.name], baseline, baseline_cpu) for case in function_cases),
    ]
