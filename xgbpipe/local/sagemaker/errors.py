"""Errors the local SageMaker returns, with the codes and HTTP statuses AWS uses."""

from __future__ import annotations


class ServiceError(Exception):
    """A control-plane error, serialised as a JSON 1.1 error (`__type`, `message`)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def resource_in_use(message: str) -> ServiceError:
    return ServiceError("ResourceInUse", message)


def resource_not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFound", message)


def resource_limit_exceeded(message: str) -> ServiceError:
    return ServiceError("ResourceLimitExceeded", message)


class RuntimeServiceError(Exception):
    """A sagemaker-runtime error, serialised as rest-json with the `x-amzn-ErrorType` header."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        original_status: int | None = None,
        original_message: str | None = None,
        log_stream_arn: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"Message": self.message}
        if self.original_status is not None:
            body["OriginalStatusCode"] = self.original_status
        if self.original_message is not None:
            body["OriginalMessage"] = self.original_message
        if self.log_stream_arn is not None:
            body["LogStreamArn"] = self.log_stream_arn
        return body


class AlgorithmFailure(Exception):
    """An error the built-in algorithm raises; the job fails with a FailureReason carrying it."""

    toolkit_class = "AlgorithmError"


class AlgorithmUserError(AlgorithmFailure):
    """A user error (bad hyperparameter, unreadable data): the toolkit's `UserError`."""

    toolkit_class = "UserError"


class AlgorithmInternalError(AlgorithmFailure):
    """xgboost itself failed: the toolkit's `AlgorithmError`."""


class JobFailure(Exception):
    """Fails a job with exactly this message as its FailureReason (already in AWS's wording)."""
