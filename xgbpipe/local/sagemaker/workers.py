"""Run jobs in worker processes, a few at a time, so a crash fails the job and not the server.

Jobs run in spawned processes (xgboost and fork do not mix), each talking to the server over a
pipe: the job goes out, status updates and the result come back. Importing xgboost takes
seconds, so processes are spawned ahead of need with their modules imported, and an idle process
takes the next job; one that crashed or was stopped is replaced, and every process retires after
a few jobs so nothing one job leaves behind lasts long. A thread pool bounds how many jobs run
at once; the supervising thread turns every way a job can end into exactly one outcome.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from xgbpipe.local.sagemaker.errors import AlgorithmFailure, JobFailure

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
    elif isinstance(error, JobFailure):
        text = str(error)
    else:
        text = f"AlgorithmError: {type(error).__name__}: {error}"
    return text[:1024]


def _worker_main(conn: Connection, preload: tuple[str, ...]) -> None:
    """Import the heavy modules, then run jobs one after another until the pipe closes."""
    for module in preload:
        importlib.import_module(module)

    def report(status: str) -> None:
        conn.send(("status", status))

    while True:
        try:
            target, spec = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("result", target(spec, report)))
        except Exception as error:
            logger.debug("job failed: %s", traceback.format_exc())
            conn.send(("error", failure_reason(error)))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    jobs_done: int = 0


class _Job:
    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.lock = threading.Lock()


class JobRunner:
    """Runs job targets in spawned processes, at most `max_workers` at a time."""

    # Recycling bounds what a long-lived worker can accumulate (memory, xgboost's caches).
    JOBS_PER_WORKER = 20

    def __init__(self, max_workers: int, preload: tuple[str, ...] = ()) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._preload = preload
        self._max_spares = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sm-job")
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._spares: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._spawners: list[threading.Thread] = []
        self._closing = False
        for _ in range(max_workers):
            self._add_spare_later()

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
        """Stop every job and every spare process; nothing is left running afterwards."""
        with self._lock:
            self._closing = True
            keys = list(self._jobs)
            spawners = list(self._spawners)
        for key in keys:
            self.stop(key)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for thread in spawners:
            thread.join()
        while True:
            try:
                spare = self._spares.get_nowait()
            except queue.Empty:
                break
            self._retire(spare)

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, args=(child, self._preload), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    @staticmethod
    def _retire(worker: _Worker) -> None:
        worker.conn.close()
        worker.process.terminate()
        worker.process.join()

    def _keep_or_retire(self, worker: _Worker) -> bool:
        """Put a live worker back in the idle pool, unless it is worn out, the pool full or
        closing; True when it was kept."""
        with self._lock:
            keep = (
                not self._closing
                and worker.process.is_alive()
                and worker.jobs_done < self.JOBS_PER_WORKER
                and self._spares.qsize() < self._max_spares
            )
            if keep:
                self._spares.put(worker)
        if not keep:
            self._retire(worker)
        return keep

    def _add_spare_later(self) -> None:
        def add() -> None:
            worker = self._spawn()
            with self._lock:
                self._spawners.remove(threading.current_thread())
            self._keep_or_retire(worker)

        thread = threading.Thread(target=add, name="sm-spawn", daemon=True)
        with self._lock:
            if self._closing:
                return
            self._spawners.append(thread)
        thread.start()

    def _take_worker(self) -> _Worker:
        """An idle warm worker when one is ready, else a fresh process."""
        while True:
            try:
                worker = self._spares.get_nowait()
            except queue.Empty:
                return self._spawn()
            if worker.process.is_alive():
                return worker
            self._retire(worker)
            self._add_spare_later()

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
        with job.lock:
            if job.stop_requested.is_set():
                return Outcome("Stopped")
            worker = self._take_worker()
            job.process = worker.process
        final: tuple[str, Any] | None = None
        try:
            worker.conn.send((target, spec))
            while True:
                try:
                    kind, payload = worker.conn.recv()
                except EOFError:
                    break
                if kind == "status":
                    on_status(payload)
                else:
                    final = (kind, payload)
                    break
        except OSError:
            logger.info("lost the pipe to a worker process", exc_info=True)
        with job.lock:
            job.process = None
            stopped = job.stop_requested.is_set()
        if final is not None and not stopped:
            worker.jobs_done += 1
            if not self._keep_or_retire(worker):
                self._add_spare_later()
        else:
            self._retire(worker)
            self._add_spare_later()
        if stopped:
            return Outcome("Stopped")
        if final is None:
            return Outcome(
                "Failed",
                reason="InternalServerError: the worker process exited with code "
                f"{worker.process.exitcode}",
            )
        kind, payload = final
        if kind == "result":
            return Outcome("Completed", result=payload)
        return Outcome("Failed", reason=payload)
