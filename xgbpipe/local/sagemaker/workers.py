"""Run jobs in worker processes, a few at a time, so a crash fails the job and not the server.

Each job gets its own spawned process (xgboost and fork do not mix) and a pipe back to the
server for status updates and the result. A thread pool bounds how many run at once; the
supervising thread turns every way a process can end into exactly one outcome callback.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from xgbpipe.local.sagemaker.errors import AlgorithmFailure

logger = logging.getLogger(__name__)

JobTarget = Callable[[dict[str, Any], Callable[[str], None]], dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """How a job ended: `Completed` with a result, `Failed` with a reason, or `Stopped`."""

    status: str
    result: dict[str, Any] | None = None
    reason: str | None = None


def failure_reason(error: BaseException) -> str:
    """FailureReason in the platform's wording, cut to the API's 1024 characters."""
    if isinstance(error, AlgorithmFailure):
        # The platform reports the container's exception after this prefix (then cuts at 1024).
        text = (
            "AlgorithmError: framework error: \n"
            f"sagemaker_algorithm_toolkit.exceptions.{error.toolkit_class}: {error}"
        )
    elif hasattr(error, "response") and "Error" in getattr(error, "response", {}):
        text = f"ClientError: {error}"
    elif type(error).__name__ == "TransformFailure":
        text = str(error)
    else:
        text = f"AlgorithmError: {type(error).__name__}: {error}"
    return text[:1024]


def _worker_main(target: JobTarget, spec: dict[str, Any], conn: Connection) -> None:
    def report(status: str) -> None:
        conn.send(("status", status))

    try:
        conn.send(("result", target(spec, report)))
    except BaseException as error:
        logger.debug("job failed: %s", traceback.format_exc())
        conn.send(("error", failure_reason(error)))
    finally:
        conn.close()


class _Job:
    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.lock = threading.Lock()


class JobRunner:
    """Runs job targets in spawned processes, at most `max_workers` at a time."""

    def __init__(self, max_workers: int) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sm-job")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        key: str,
        target: JobTarget,
        spec: dict[str, Any],
        on_status: Callable[[str], None],
        on_done: Callable[[Outcome], None],
    ) -> None:
        job = _Job()
        with self._lock:
            self._jobs[key] = job
        self._pool.submit(self._supervise, key, job, target, spec, on_status, on_done)

    def stop(self, key: str) -> None:
        """Ask a job to stop; a running process is terminated, a queued one never starts."""
        with self._lock:
            job = self._jobs.get(key)
        if job is None:
            return
        with job.lock:
            job.stop_requested.set()
            if job.process is not None and job.process.is_alive():
                job.process.terminate()

    def shutdown(self) -> None:
        with self._lock:
            keys = list(self._jobs)
        for key in keys:
            self.stop(key)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _supervise(
        self,
        key: str,
        job: _Job,
        target: JobTarget,
        spec: dict[str, Any],
        on_status: Callable[[str], None],
        on_done: Callable[[Outcome], None],
    ) -> None:
        try:
            outcome = self._run(job, target, spec, on_status)
        except Exception as error:
            logger.exception("supervising job %s failed", key)
            outcome = Outcome("Failed", reason=f"InternalServerError: {error}"[:1024])
        finally:
            with self._lock:
                self._jobs.pop(key, None)
        on_done(outcome)

    def _run(
        self,
        job: _Job,
        target: JobTarget,
        spec: dict[str, Any],
        on_status: Callable[[str], None],
    ) -> Outcome:
        receiver, sender = self._context.Pipe(duplex=False)
        with job.lock:
            if job.stop_requested.is_set():
                return Outcome("Stopped")
            process = self._context.Process(
                target=_worker_main, args=(target, spec, sender), daemon=True
            )
            process.start()
            job.process = process
        sender.close()
        final: tuple[str, Any] | None = None
        try:
            while True:
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    break
                if kind == "status":
                    on_status(payload)
                else:
                    final = (kind, payload)
        finally:
            receiver.close()
            process.join()
        if job.stop_requested.is_set():
            return Outcome("Stopped")
        if final is None:
            return Outcome(
                "Failed",
                reason="InternalServerError: the worker process exited with code "
                f"{process.exitcode}",
            )
        kind, payload = final
        if kind == "result":
            return Outcome("Completed", result=payload)
        return Outcome("Failed", reason=payload)
