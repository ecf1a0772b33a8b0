"""The kind of learning problem an XGBoost objective poses; it decides labels, metrics and gate."""

from enum import StrEnum


class ProblemType(StrEnum):
    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"
