"""A training job on several instances, as the built-in XGBoost container runs it.

The job's worker process lists the channels, deals their objects out to hosts `algo-1` ...
`algo-N` (sharding.py) and spawns one process per host (hosts.py). Each host downloads only its
objects, names them in its log stream and loads its DMatrices, then says whether it has data.
As in the container (train.py, distributed.py), a host without training data, or without
validation data when the job has a validation channel, is left out with a warning; the others
train together with xgboost's collective: the worker process runs the `RabitTracker`, each host
joins it in a `CommunicatorContext` and calls the usual `xgb.train`. Ranks follow the host
names sorted as strings, as the container sorts them, and rank 0 (the master) uploads the model
and reports the final metrics. A single host with data trains alone, as in the container.

The container, when no host has training data, exits every host without a model; here the job
fails with the single-instance message instead, which is what anyone would want to see.
"""

from __future__ import annotations

import contextlib
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from xgboost import collective
from xgboost.tracker import RabitTracker

from xgbpipe.local.sagemaker import s3io
from xgbpipe.local.sagemaker.errors import AlgorithmUserError
from xgbpipe.local.sagemaker.hosts import CRASH_GRACE_SECONDS, HostGroup
from xgbpipe.local.sagemaker.joblogs import JobLog
from xgbpipe.local.sagemaker.sharding import distribute, host_names
from xgbpipe.local.sagemaker.training import (
    Report,
    channel_keys,
    download_channels,
    job_result,
    load_host_data,
    log_channel_files,
    train_booster,
    upload_model,
)

TRACKER_HOST = "127.0.0.1"
# How long the tracker may wait for the hosts to leave once training is over.
TRACKER_SHUTDOWN_SECONDS = 60
_DIVIDE_DATA = (
    "Please divide the training data across instances properly. See https://docs.aws.amazon.com"
    "/sagemaker/latest/dg/xgboost.html#Instance-XGBoost-distributed-training-divide-data."
)


def host_keys(job: dict[str, Any], keys: dict[str, list[str]], count: int) -> list[dict[str, Any]]:
    """Each host's keys per channel, by the channel's S3DataDistributionType."""
    per_host: list[dict[str, Any]] = [{} for _ in range(count)]
    for channel in job.get("InputDataConfig", []):
        name = channel["ChannelName"]
        kind = channel["DataSource"]["S3DataSource"].get("S3DataDistributionType")
        for index, chosen in enumerate(distribute(keys[name], count, kind)):
            per_host[index][name] = chosen
    return per_host


def run_distributed_training(spec: dict[str, Any], report: Report) -> dict[str, Any]:
    """Worker entry point of a job with InstanceCount > 1."""
    job = spec["job"]
    hosts = host_names(job["ResourceConfig"]["InstanceCount"])
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    report("Downloading")
    keys = host_keys(job, channel_keys(job, client), len(hosts))
    specs = {
        host: {**spec, "host": host, "hosts": hosts, "keys": keys[index]}
        for index, host in enumerate(hosts)
    }
    with HostGroup(_host, specs, grace=CRASH_GRACE_SECONDS) as group:
        loaded = group.gather("loaded")
        report("Training")
        has_validation = any(c["ChannelName"] == "validation" for c in job["InputDataConfig"])
        included = sorted(
            host
            for host, state in loaded.items()
            if state["train"] and (state["validation"] or not has_validation)
        )
        if not included:
            missing = "training" if not any(s["train"] for s in loaded.values()) else "validation"
            path = loaded[hosts[0]][f"{missing}_path"]
            raise AlgorithmUserError(f"No data in {missing} channel path {path}")
        tracker = _start_tracker(len(included)) if len(included) > 1 else None
        try:
            args = tracker.worker_args() if tracker else None
            for host in hosts:
                rank = included.index(host) if host in included else None
                group.send(host, {"rank": rank, "world": len(included), "args": args})
            finished = group.gather("finished", report)
            if tracker:
                tracker.wait_for(TRACKER_SHUTDOWN_SECONDS)
        finally:
            if tracker:
                # A tracker whose workers died fails to shut down; the job has failed already.
                with contextlib.suppress(Exception):
                    tracker.free()
    result: dict[str, Any] = finished[included[0]]
    return result


def _start_tracker(workers: int) -> RabitTracker:
    tracker = RabitTracker(n_workers=workers, host_ip=TRACKER_HOST, sortby="task")
    tracker.start()
    return tracker


def _host(spec: dict[str, Any], conn: Connection) -> None:
    """One host's process: download, load, then train when told to (or stand aside)."""
    host = spec["host"]
    log = JobLog.training(spec, host)
    try:
        result = _run_host(spec, conn, log)
    except Exception as error:
        log.write(f"Training failed on {host}: {error}")
        raise
    finally:
        log.flush()
    # Only now: the job may end, and its logs be read, as soon as every host has said this.
    conn.send(("finished", result))


def _run_host(spec: dict[str, Any], conn: Connection, log: JobLog) -> dict[str, Any] | None:
    """Returns the job's result on the master, None on the other hosts."""
    job, host, hosts = spec["job"], spec["host"], spec["hosts"]
    client = s3io.s3_client(spec.get("s3_endpoint_url"), spec["region"])
    with tempfile.TemporaryDirectory(prefix=f"xgbpipe-training-{host}-") as tmp:
        workdir = Path(tmp)
        folders = download_channels(job, client, workdir / "data", spec["keys"])
        log_channel_files(log, job, spec["keys"], host)
        # DMatrices are built before joining the collective, which would otherwise expect
        # every host to build the same ones.
        data = load_host_data(job, folders)
        log.write(f"Distributed node training with {len(hosts)} hosts: {hosts}")
        if data.train is None:
            log.write(
                f"Host {host} does not have training data. Will broadcast to cluster and this "
                f"host {host} will not be used in distributed training. {_DIVIDE_DATA}"
            )
        elif "validation" in folders and data.validation is None:
            log.write(
                f"Host {host} does not have validation data in the validation channel. Will "
                f"broadcast to cluster and this host {host} will not be used in distributed "
                f"training. {_DIVIDE_DATA}"
            )
        log.flush()
        conn.send(
            (
                "loaded",
                {
                    "train": data.train is not None,
                    "validation": data.validation is not None,
                    "training_path": str(folders["train"]),
                    "validation_path": str(folders.get("validation", "")),
                },
            )
        )
        order = conn.recv()
        rank, world, args = order["rank"], order["world"], order["args"]
        if rank is None or data.train is None:
            log.write(f"Host {host} not being used for distributed training.")
            return None
        if args is None:
            log.write("Only 1 host with training data, starting single node training.")
            booster, history = train_booster(data.config, data.train, data.validation)
        else:
            log.write(
                f"{host} trains as rank {rank} of {world} (tracker "
                f"{args['dmlc_tracker_uri']}:{args['dmlc_tracker_port']})"
            )
            with collective.CommunicatorContext(**args, dmlc_task_id=str(rank)):
                booster, history = train_booster(
                    data.config, data.train, data.validation, is_master=rank == 0
                )
        if rank != 0:
            return None
        conn.send(("status", "Uploading"))
        result = job_result(upload_model(job, client, booster, workdir), history)
        log.write(f"Master {host} uploaded the model to {result['S3ModelArtifacts']}")
        return result
