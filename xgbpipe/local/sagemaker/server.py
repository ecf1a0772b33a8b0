"""HTTP front of the local SageMaker: one port for the control plane and the runtime.

- Control plane: `POST /` with `X-Amz-Target: SageMaker.<Operation>`, JSON 1.1 bodies and errors.
- Runtime: `POST /endpoints/<name>/invocations`, rest-json errors with `x-amzn-ErrorType`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from xgbpipe.local.faults import FaultFile
from xgbpipe.local.sagemaker.backend import WORKER_MODULES, SageMakerBackend
from xgbpipe.local.sagemaker.errors import RuntimeServiceError, ServiceError
from xgbpipe.local.sagemaker.events import EventPublisher
from xgbpipe.local.sagemaker.validation import validate_input
from xgbpipe.local.sagemaker.workers import JobRunner

logger = logging.getLogger(__name__)

JSON_11 = "application/x-amz-json-1.1"
_INVOCATIONS = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations/?$")
_TARGET_PREFIX = "SageMaker."


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _json_response(payload: dict[str, Any], status: int = 200) -> Response:
    response = Response(json.dumps(payload, default=_json_default), status=status, mimetype=JSON_11)
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def _service_error(error: ServiceError) -> Response:
    response = _json_response({"__type": error.code, "message": error.message}, error.status)
    response.headers["x-amzn-ErrorType"] = error.code
    return response


def _runtime_error(error: RuntimeServiceError) -> Response:
    response = Response(json.dumps(error.body()), status=error.status, mimetype="application/json")
    response.headers["x-amzn-ErrorType"] = (
        f"{error.code}:http://internal.amazon.com/coral/com.amazon.sagemaker/"
    )
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


class _QuietRequestHandler(WSGIRequestHandler):
    """Access logs at DEBUG: a training poll loop would otherwise flood the console."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug('"%s" %s %s', self.requestline, code, size)


class SageMakerApp:
    """The WSGI application dispatching to a SageMakerBackend."""

    def __init__(self, backend: SageMakerBackend) -> None:
        self._backend = backend
        self._operations = backend.operations()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path in ("/", "/ping"):
            return Response("ok", mimetype="text/plain")
        match = _INVOCATIONS.match(request.path)
        if match and request.method == "POST":
            return self._invoke(match.group("name"), request)
        if request.method == "POST" and request.path == "/":
            return self._control_plane(request)
        return _service_error(ServiceError("UnknownOperationException", "Unknown operation", 404))

    def _control_plane(self, request: Request) -> Response:
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(_TARGET_PREFIX)
        handler = self._operations.get(operation) if target.startswith(_TARGET_PREFIX) else None
        if handler is None:
            return _service_error(
                ServiceError(
                    "UnknownOperationException",
                    f"Operation '{target}' is not supported by the local SageMaker",
                )
            )
        try:
            params = json.loads(request.get_data() or b"{}")
            if not isinstance(params, dict):
                raise ServiceError("SerializationException", "Request body must be a JSON object")
            validate_input("sagemaker", operation, params)
            return _json_response(handler(params))
        except json.JSONDecodeError as error:
            return _service_error(
                ServiceError("SerializationException", f"Malformed JSON: {error}")
            )
        except ServiceError as error:
            return _service_error(error)
        except Exception as error:
            logger.exception("%s failed", operation)
            return _service_error(
                ServiceError("InternalFailure", f"{type(error).__name__}: {error}", 500)
            )

    def _invoke(self, name: str, request: Request) -> Response:
        try:
            answer, variant = self._backend.invoke_endpoint(
                name,
                request.get_data(),
                request.headers.get("Content-Type"),
                request.headers.get("Accept"),
                request.headers.get("X-Amzn-SageMaker-Target-Variant"),
            )
        except RuntimeServiceError as error:
            return _runtime_error(error)
        except Exception as error:
            logger.exception("InvokeEndpoint %s failed", name)
            return _runtime_error(RuntimeServiceError("InternalFailure", str(error), 500))
        response = Response(
            answer.body if answer else b"",
            status=200,
            content_type=answer.content_type if answer else None,
        )
        response.headers["x-Amzn-Invoked-Production-Variant"] = variant
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response


class LocalSageMaker:
    """A local SageMaker on one port; jobs run in worker processes, endpoints in this process."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
        max_workers: int = 2,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        s3_endpoint_url: str | None = None,
        events_endpoint_url: str | None = None,
        faults_path: Path | None = None,
    ) -> None:
        self.host = host
        self.faults_path = faults_path
        self.port = port
        self.state_dir = state_dir
        self.max_workers = max_workers
        self.region = region
        self.account_id = account_id
        self.s3_endpoint_url = s3_endpoint_url
        self.events_endpoint_url = events_endpoint_url
        self.url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._runner: JobRunner | None = None
        self._publisher: EventPublisher | None = None
        self._backend: SageMakerBackend | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the local SageMaker is already running")
        self._runner = JobRunner(self.max_workers, preload=WORKER_MODULES)
        self._publisher = EventPublisher(self.events_endpoint_url, self.region)
        self._backend = SageMakerBackend(
            region=self.region,
            account_id=self.account_id,
            s3_endpoint_url=self.s3_endpoint_url,
            publisher=self._publisher,
            runner=self._runner,
            state_dir=self.state_dir,
            faults=FaultFile(self.faults_path) if self.faults_path else None,
        )
        self._server = make_server(
            self.host,
            self.port,
            SageMakerApp(self._backend),
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
        self.port = self._server.server_port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sm-http", daemon=True
        )
        self._thread.start()
        logger.info("local SageMaker listening on %s", self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._backend is not None:
            self._backend.close()
        if self._runner is not None:
            self._runner.shutdown()
        if self._publisher is not None:
            self._publisher.close()
        self._server = self._thread = None
        self._runner = None
        self._publisher = None
        self._backend = None

    def __enter__(self) -> LocalSageMaker:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
