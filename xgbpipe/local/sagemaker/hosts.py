"""The instances of a multi-instance job, each its own OS process, started by the job's worker.

A job runs in a pool worker process (see workers.py); with InstanceCount N > 1 that process
spawns N instance processes (spawned, not forked: xgboost and fork do not mix) and coordinates
them over one pipe each. Ending them with the job:

- The job ends normally or fails: `HostGroup.close` terminates whatever still runs.
- The job is stopped or runs out of time: the server terminates the worker process, which gets
  no chance to clean up; each instance watches its parent and exits as soon as it is gone.
- An instance crashes: the job fails naming it (`host algo-2 exited with code -9`), after a
  short grace in which the others may still report; in distributed training the survivors fail
  too once their peer's socket closes, and a crash says more than their broken pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from xgbpipe.local.sagemaker.errors import JobFailure
from xgbpipe.local.sagemaker.workers import failure_reason

logger = logging.getLogger(__name__)

HostTarget = Callable[[dict[str, Any], Connection], None]
# Long enough for a peer's broken connection to fail the survivors of a crash, so that the crash
# (and not their complaint) is the reason given.
CRASH_GRACE_SECONDS = 3.0


class HostFailure(JobFailure):
    """An instance failed or died; the message is the job's FailureReason."""


def _exit_with_parent() -> None:
    """End this process when the one that started it is gone (stopped job, killed worker)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="sm-parent-watch", daemon=True).start()


def _host_main(conn: Connection, target: HostTarget, spec: dict[str, Any]) -> None:
    _exit_with_parent()
    try:
        target(spec, conn)
    except Exception as error:
        logger.debug("instance failed: %s", traceback.format_exc())
        conn.send(("error", failure_reason(error)))
    finally:
        conn.close()


def _allow_children() -> None:
    """Let this worker start instance processes.

    Pool workers are daemonic, so that the server's exit ends them, and multiprocessing refuses
    children to daemonic processes. The flag only matters inside this process: the server still
    sees a daemonic worker. What the flag would guarantee for the instances, that they end with
    this process, `_exit_with_parent` does.
    """
    process = multiprocessing.current_process()
    if process.daemon:
        process.daemon = False


class HostGroup:
    """Instance processes running `target(spec, conn)`, one per named spec, in a context."""

    def __init__(
        self, target: HostTarget, specs: dict[str, dict[str, Any]], grace: float = 0.0
    ) -> None:
        self._target = target
        self._specs = specs
        self._grace = grace
        self._processes: dict[str, multiprocessing.process.BaseProcess] = {}
        self._conns: dict[str, Connection] = {}

    def __enter__(self) -> HostGroup:
        _allow_children()
        context = multiprocessing.get_context("spawn")
        try:
            for name, spec in self._specs.items():
                parent, child = context.Pipe(duplex=True)
                process = context.Process(
                    target=_host_main, args=(child, self._target, spec), name=name, daemon=False
                )
                process.start()
                child.close()
                self._processes[name] = process
                self._conns[name] = parent
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()
        for name, process in self._processes.items():
            process.join(timeout=10)
            if process.is_alive():
                logger.warning("instance %s ignored SIGTERM; killing it", name)
                process.kill()
                process.join()
        for conn in self._conns.values():
            conn.close()

    def send(self, name: str, message: Any) -> None:
        try:
            self._conns[name].send(message)
        except OSError:
            # The instance died; the next `gather` reports how, naming it.
            logger.info("instance %s is gone; could not send it %r", name, message)

    def gather(
        self, kind: str, on_status: Callable[[str], None] = lambda _status: None
    ) -> dict[str, Any]:
        """Every instance's next `(kind, payload)` message, by name; `status` messages go to
        `on_status` meanwhile. Raises HostFailure when an instance fails or dies first."""
        answers: dict[str, Any] = {}
        failures: list[tuple[bool, str]] = []
        pending = set(self._specs)
        deadline: float | None = None
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait(
                [self._conns[name] for name in pending]
                + [self._processes[name].sentinel for name in pending],
                timeout=timeout,
            )
            if not ready:
                break
            for name in sorted(pending):
                outcome = self._receive(name, kind, on_status)
                if outcome is None:
                    continue
                pending.discard(name)
                crashed, payload = outcome
                if crashed or isinstance(payload, _Error):
                    failures.append((crashed, str(payload)))
                    if deadline is None:
                        deadline = time.monotonic() + self._grace
                else:
                    answers[name] = payload
        if failures:
            # A crash explains the others' failures better than their broken connections do.
            crashes = [reason for crashed, reason in failures if crashed]
            raise HostFailure((crashes or [reason for _, reason in failures])[0])
        return answers

    def _receive(
        self, name: str, kind: str, on_status: Callable[[str], None]
    ) -> tuple[bool, Any] | None:
        """`(crashed, payload)` once the instance answered or died, else None."""
        conn = self._conns[name]
        try:
            while conn.poll():
                got, payload = conn.recv()
                if got == "status":
                    on_status(payload)
                elif got == "error":
                    return False, _Error(payload)
                elif got == kind:
                    return False, payload
                else:
                    return False, _Error(f"InternalServerError: unexpected message {got}")
        except (EOFError, OSError):
            pass
        process = self._processes[name]
        if process.is_alive():
            return None
        process.join()
        return True, f"AlgorithmError: host {name} exited with code {process.exitcode}"


class _Error(str):
    """An instance's own FailureReason, as opposed to an answer."""
