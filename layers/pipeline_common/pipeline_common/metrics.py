"""Score a batch transform's joined output (label beside prediction) in one streaming pass.

Each output line is the original test row (label first, `input_width` fields) followed by the
prediction: one value, or for multi:softprob one probability per class, which the container may
write as `[0.1, 0.2, 0.7]`. The definitions match scikit-learn's (`mean_squared_error`,
`mean_absolute_error`, `r2_score`, `roc_auc_score`, `accuracy_score`, `log_loss`), without numpy,
which the Lambda layer does not carry.

Memory stays flat however many rows there are: every metric is a running sum, except AUC, which
needs the scores' order. AUC counts the positives and negatives per distinct score and is exact
(ties counted half, as scikit-learn's) while the test set has at most `EXACT_AUC_SCORES` distinct
scores. Past that, neighbouring scores are merged into bins, and the pairs of a positive and a
negative within one bin count as ties: `auc` is then within `auc_error_bound` of the exact AUC.
That bound, the sum over bins of positives * negatives / (2 * P * N), comes with every binary
result (0.0 when exact), and is about 1 / EXACT_AUC_SCORES for a smooth spread of scores (9e-6
over a million distinct probabilities); the actual error is typically far smaller. A bin is the
scores whose IEEE 754 bits agree but for the lowest `shift` bits: an interval of scores, as narrow
relative to the scores' size near 0 as near 1, for probabilities and margins of any sign and
range alike. Whenever the bins outnumber the limit, `shift` grows by the fewest bits that bring
them back within it, each bit halving the resolution; it never shrinks.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, repeat
from types import MappingProxyType
from typing import ClassVar, Protocol

from pipeline_common.problem import ProblemType


class EvaluationError(ValueError):
    """Batch transform output that cannot be scored; the message names the line."""


PRIMARY_METRIC: Mapping[ProblemType, str] = MappingProxyType(
    {
        ProblemType.REGRESSION: "rmse",
        ProblemType.BINARY: "auc",
        ProblemType.MULTICLASS: "accuracy",
    }
)
# The metrics each kind of problem is scored on (logloss needs probabilities).
METRICS_OF: Mapping[ProblemType, tuple[str, ...]] = MappingProxyType(
    {
        ProblemType.REGRESSION: ("rmse", "mae", "r2"),
        ProblemType.BINARY: ("auc", "accuracy", "logloss"),
        ProblemType.MULTICLASS: ("accuracy", "logloss"),
    }
)
HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {"rmse": False, "mae": False, "r2": True, "auc": True, "accuracy": True, "logloss": False}
)

# scikit-learn's log_loss clips probabilities to [eps, 1 - eps] with eps of float64.
LOG_LOSS_EPS = sys.float_info.epsilon
_BRACKETS = b'[] "'
# Lines scored together, bounded in count and bytes: memory stays flat however long or wide the
# rows are.
_CHUNK_LINES = 8192
_CHUNK_BYTES = 4_000_000
# AUC is exact while there are at most this many distinct scores; past it, scores are binned to
# stay within it. At the limit the counts take 11 MB (distinct scores, 30% positive) to 28 MB
# (both classes at every score, counts past 256), and 32 MB at most while bins merge
# (tracemalloc, Python 3.12).
EXACT_AUC_SCORES = 1 << 17
# The bits of -0.0 read as a signed 64-bit integer; it ties with +0.0, whose bits are 0.
_NEGATIVE_ZERO_BITS = -(1 << 63)


def evaluate_joined_output(
    lines: Iterable[bytes],
    problem: ProblemType,
    input_width: int,
    num_class: int | None = None,
    *,
    objective: str | None = None,
) -> dict[str, float]:
    """Compute the metrics for `problem` from joined batch transform output lines.

    `objective` tells how binary predictions read: probabilities (binary:logistic), margins
    (binary:logitraw) or 0/1 classes (binary:hinge). Without it, predictions all within [0, 1]
    count as probabilities and any outside as margins.
    """
    return evaluate_outputs([("", lines)], problem, input_width, num_class, objective=objective)


def evaluate_outputs(
    outputs: Iterable[tuple[str, Iterable[bytes]]],
    problem: ProblemType,
    input_width: int,
    num_class: int | None = None,
    *,
    objective: str | None = None,
) -> dict[str, float]:
    """The metrics of several outputs (a transform's `.out` per part) scored as one test set;
    a message names the output and its own line (each output given as (name, lines))."""
    scorer: _Scorer
    if problem is ProblemType.REGRESSION:
        scorer = _RegressionScorer()
    elif problem is ProblemType.BINARY:
        scorer = _BinaryScorer(objective)
    else:
        # int() also accepts the Decimal a DynamoDB record returns.
        scorer = _MulticlassScorer(None if num_class is None else int(num_class))
    for name, lines in outputs:
        try:
            _score_lines(scorer, lines, input_width)
        except EvaluationError as error:
            if not name:
                raise
            raise EvaluationError(f"{name}: {error}") from None
    if scorer.rows == 0:
        raise EvaluationError("The batch transform output has no rows to evaluate.")
    return scorer.result()


def _score_lines(scorer: _Scorer, lines: Iterable[bytes], input_width: int) -> None:
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            chunk.append((number, line))
            size += len(line)
        if len(chunk) == _CHUNK_LINES or size >= _CHUNK_BYTES:
            _score_chunk(scorer, chunk, input_width)
            chunk, size = [], 0
    _score_chunk(scorer, chunk, input_width)


def _score_chunk(scorer: _Scorer, chunk: list[tuple[int, bytes]], input_width: int) -> None:
    """Score lines a chunk at a time: the common shape (one plain prediction after the input)
    in bulk, anything else, and any chunk holding a problem, line by line with its message."""
    if not chunk:
        return
    columns = _label_and_prediction_columns(chunk, input_width) if scorer.bulk else None
    if columns is not None and scorer.add_columns(*columns):
        return
    for number, line in chunk:
        label, prediction = _split(line, number, input_width)
        scorer.add(number, label, prediction)


def _label_and_prediction_columns(
    chunk: list[tuple[int, bytes]], input_width: int
) -> tuple[list[float], list[float]] | None:
    """(labels, predictions) when every line is the input plus one plain finite prediction."""
    try:
        if any(line.count(b",") != input_width for _, line in chunk):
            return None
        labels = [float(line.partition(b",")[0]) for _, line in chunk]
        predictions = [float(line.rpartition(b",")[2]) for _, line in chunk]
    except ValueError:
        return None
    if not (all(map(math.isfinite, labels)) and all(map(math.isfinite, predictions))):
        return None
    return labels, predictions


def _number(text: bytes, number: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        shown = text[:40].decode("utf-8", "backslashreplace")
        raise EvaluationError(f"Line {number}: the {what} {shown!r} is not a number.") from None
    if not math.isfinite(value):
        raise EvaluationError(f"Line {number}: the {what} is {value}, not a finite number.")
    return value


def _split(line: bytes, number: int, input_width: int) -> tuple[float, list[float]]:
    fields = line.split(b",")
    predicted = [f.strip(_BRACKETS) for f in fields[input_width:]]
    predicted = [f for f in predicted if f]
    if not predicted:
        raise EvaluationError(
            f"Line {number} has {len(fields)} fields and no prediction after the {input_width} "
            "input fields; was the transform job run with JoinSource Input?"
        )
    label = _number(fields[0], number, "label")
    return label, [_number(f, number, "prediction") for f in predicted]


@dataclass
class _Sum:
    """Neumaier's compensated sum: exact enough that long sums match numpy's pairwise sums."""

    total: float = 0.0
    compensation: float = 0.0

    def add_all(self, values: Iterable[float]) -> None:
        self.add(math.fsum(values))  # fsum rounds the chunk's sum correctly

    def add(self, value: float) -> None:
        new_total = self.total + value
        if abs(self.total) >= abs(value):
            self.compensation += (self.total - new_total) + value
        else:
            self.compensation += (value - new_total) + self.total
        self.total = new_total

    @property
    def value(self) -> float:
        return self.total + self.compensation


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations, merged a batch at a time (Chan et al.): as
    stable as Welford's one-at-a-time update, which is the case of a batch of one."""

    count: int = 0
    mean: float = 0.0
    squared_deviations: _Sum = field(default_factory=_Sum)

    def add_all(self, values: list[float]) -> None:
        count = len(values)
        mean = math.fsum(values) / count
        delta = mean - self.mean
        total = self.count + count
        self.squared_deviations.add_all(
            [*((v - mean) ** 2 for v in values), delta * delta * self.count * count / total]
        )
        self.mean += delta * count / total
        self.count = total


class _Scorer(Protocol):
    rows: int
    # Whether add_columns can take plain (label, prediction) pairs at all.
    bulk: ClassVar[bool]

    def add(self, number: int, label: float, prediction: list[float]) -> None: ...

    def add_columns(self, labels: list[float], predictions: list[float]) -> bool:
        """Score plain (label, prediction) pairs at once; False: take them line by line."""
        ...

    def result(self) -> dict[str, float]: ...


def _single(number: int, prediction: list[float]) -> float:
    if len(prediction) != 1:
        raise EvaluationError(
            f"Line {number} has {len(prediction)} prediction values; expected one."
        )
    return prediction[0]


@dataclass
class _RegressionScorer:
    bulk: ClassVar[bool] = True
    rows: int = 0
    squared_error: _Sum = field(default_factory=_Sum)
    absolute_error: _Sum = field(default_factory=_Sum)
    labels: _Moments = field(default_factory=_Moments)

    def add(self, number: int, label: float, prediction: list[float]) -> None:
        self.add_columns([label], [_single(number, prediction)])

    def add_columns(self, labels: list[float], predictions: list[float]) -> bool:
        errors = [label - prediction for label, prediction in zip(labels, predictions, strict=True)]
        self.rows += len(errors)
        self.squared_error.add_all([error * error for error in errors])
        self.absolute_error.add_all(map(abs, errors))
        self.labels.add_all(labels)
        return True

    def result(self) -> dict[str, float]:
        sse = self.squared_error.value
        metrics: dict[str, float] = {
            "rows": self.rows,
            "rmse": math.sqrt(sse / self.rows),
            "mae": self.absolute_error.value / self.rows,
        }
        if self.rows >= 2:  # R^2 is undefined for one row
            sst = self.labels.squared_deviations.value
            # As scikit-learn's r2_score (force_finite): a constant label scores 1 or 0.
            metrics["r2"] = 1.0 - sse / sst if sst > 0 else float(sse == 0)
        return metrics


def _binary_label(number: int, label: float) -> int:
    if label not in (0.0, 1.0):
        raise EvaluationError(f"Line {number}: the label {label:g} is not 0 or 1.")
    return int(label)


def _clipped_log(probability: float) -> float:
    return math.log(min(max(probability, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS))


def _score_bits(scores: list[float]) -> list[int]:
    """Each score's IEEE 754 bits read as a signed 64-bit integer, -0.0 as +0.0's: the bits of
    a score >= 0 increase with it, those of a negative score decrease as it rises."""
    bits = memoryview(array("d", scores)).cast("B").cast("q").tolist()
    if _NEGATIVE_ZERO_BITS in bits:
        bits = [0 if b == _NEGATIVE_ZERO_BITS else b for b in bits]
    return bits


def _merged(bins: Counter[int], shift: int) -> Counter[int]:
    """The counts of `bins` with each key shifted right by `shift` bits, neighbours added up.
    `bins` is emptied on the way, freeing its numbers while the merged bins grow."""
    merged: Counter[int] = Counter()
    get = merged.get
    while bins:
        key, count = bins.popitem()
        key >>= shift
        merged[key] = get(key, 0) + count
    return merged


@dataclass
class _BinaryScorer:
    bulk: ClassVar[bool] = True
    objective: str | None
    rows: int = 0
    # Rows per bin of scores, all of them and the positive ones, keyed by the bits of the score
    # shifted right by `shift`. With shift 0 a bin is one distinct score and AUC is exact; past
    # EXACT_AUC_SCORES bins, shift grows and neighbouring scores share a bin (module docstring).
    scored: Counter[int] = field(default_factory=Counter)
    positives: Counter[int] = field(default_factory=Counter)
    shift: int = 0
    correct_at_half: int = 0
    correct_at_zero: int = 0
    log_loss: _Sum = field(default_factory=_Sum)
    all_probabilities: bool = True

    def add(self, number: int, label: float, prediction: list[float]) -> None:
        positive = _binary_label(number, label)
        score = _single(number, prediction)
        self.rows += 1
        self._count([label], [score])
        self.correct_at_half += (score > 0.5) == positive
        self.correct_at_zero += (score > 0.0) == positive
        if 0.0 <= score <= 1.0:
            self.log_loss.add(-_clipped_log(score if positive else 1.0 - score))
        else:
            self.all_probabilities = False

    def add_columns(self, labels: list[float], predictions: list[float]) -> bool:
        if not set(labels) <= {0.0, 1.0}:
            return False  # line by line, to name the line with the bad label
        self.rows += len(labels)
        self._count(labels, predictions)
        self.correct_at_half += sum(
            (score > 0.5) == (label == 1.0)
            for score, label in zip(predictions, labels, strict=True)
        )
        self.correct_at_zero += sum(
            (score > 0.0) == (label == 1.0)
            for score, label in zip(predictions, labels, strict=True)
        )
        pairs = zip(predictions, labels, strict=True)
        losses = [-_clipped_log(s if y else 1.0 - s) for s, y in pairs if 0.0 <= s <= 1.0]
        self.all_probabilities &= len(losses) == len(labels)
        self.log_loss.add_all(losses)
        return True

    def _count(self, labels: list[float], scores: list[float]) -> None:
        """Count each score's row in its bin; labels are 0.0 or 1.0. Counter.update, compress
        and map run in C: no Python code runs per row."""
        keys = _score_bits(scores)
        if self.shift:
            keys = list(map(operator.rshift, keys, repeat(self.shift)))
        self.scored.update(keys)
        self.positives.update(compress(keys, labels))
        if len(self.scored) > EXACT_AUC_SCORES:
            self._coarsen()

    def _coarsen(self) -> None:
        """Merge neighbouring bins by the fewest more bits that bring them within the limit."""
        # In order, each key starts a bin but those sharing their predecessor's. Two keys of one
        # sign share a bin once shifted right by the bit length of their XOR (never if of two).
        keys = sorted(self.scored)
        split = bisect_left(keys, 0)
        merging_at: Counter[int] = Counter()
        for side in (keys[:split], keys[split:]):
            merging_at.update(map(int.bit_length, map(operator.xor, side, side[1:])))
        del keys, side
        bins, more = len(self.scored), 0
        while bins > EXACT_AUC_SCORES and self.shift + more < 64:
            more += 1
            bins -= merging_at[more]
        self.shift += more
        self.scored = _merged(self.scored, more)
        self.positives = _merged(self.positives, more)

    def result(self) -> dict[str, float]:
        margins = self.objective == "binary:logitraw" or (
            self.objective is None and not self.all_probabilities
        )
        probabilities = self.objective in {None, "binary:logistic"} and self.all_probabilities
        correct = self.correct_at_zero if margins else self.correct_at_half
        auc, auc_error_bound = self._auc()
        metrics: dict[str, float] = {
            "rows": self.rows,
            "auc": auc,
            "auc_error_bound": auc_error_bound,
            "accuracy": correct / self.rows,
        }
        if probabilities:
            metrics["logloss"] = self.log_loss.value / self.rows
        return metrics

    def _auc(self) -> tuple[float, float]:
        """AUC, and how far at most from the exact AUC it is: 0.0 while a bin is one score."""
        positives = self.positives.total()
        negatives = self.rows - positives
        if negatives == 0 or positives == 0:
            only = "positive (1)" if negatives == 0 else "negative (0)"
            raise EvaluationError(
                f"AUC is undefined: every test row is {only}; test.csv needs both classes."
            )
        # The bins in the order of their scores: negative scores' bits fall as the score rises.
        keys = sorted(self.scored)
        below_zero = bisect_left(keys, 0)
        ordered = keys[:below_zero][::-1] + keys[below_zero:]
        del keys
        # Twice the area under the ROC curve, in integers: each positive beats the negatives
        # scored below it and ties with those in its bin (counted half). Within a bin of several
        # scores, each of its positive-negative pairs is off by at most a half.
        twice_area = 0
        tied_pairs = 0
        negatives_below = 0
        for key in ordered:
            p = self.positives.get(key, 0)
            n = self.scored[key] - p
            twice_area += p * (2 * negatives_below + n)
            tied_pairs += p * n
            negatives_below += n
        pairs = positives * negatives
        return twice_area / (2 * pairs), tied_pairs / (2 * pairs) if self.shift else 0.0


@dataclass
class _MulticlassScorer:
    # Several values per line, each class checked: multiclass test sets go line by line.
    bulk: ClassVar[bool] = False
    num_class: int | None
    rows: int = 0
    correct: int = 0
    log_loss: _Sum = field(default_factory=_Sum)
    probabilities: bool | None = None  # decided by the first line: softprob or softmax

    def add(self, number: int, label: float, prediction: list[float]) -> None:
        probabilities = len(prediction) > 1
        if self.probabilities is None:
            self.probabilities = probabilities
        if probabilities != self.probabilities or (
            probabilities and self.num_class is not None and len(prediction) != self.num_class
        ):
            expected = self.num_class if self.num_class is not None else "the first line's"
            raise EvaluationError(
                f"Line {number} has {len(prediction)} prediction values; expected 1 (a class) "
                f"or {expected} (one probability per class) on every line."
            )
        classes = len(prediction) if probabilities else self.num_class
        true_class = self._class(number, label, classes, "label")
        self.rows += 1
        if probabilities:
            predicted_class = prediction.index(max(prediction))  # first maximum, as numpy.argmax
            self.log_loss.add(-_clipped_log(prediction[true_class]))
        else:
            predicted_class = self._class(number, prediction[0], classes, "predicted class")
        self.correct += predicted_class == true_class

    def add_columns(self, labels: list[float], predictions: list[float]) -> bool:
        return False

    @staticmethod
    def _class(number: int, value: float, classes: int | None, what: str) -> int:
        if not value.is_integer() or value < 0 or (classes is not None and value >= classes):
            allowed = f"0 to {classes - 1}" if classes is not None else "0 or more"
            raise EvaluationError(
                f"Line {number}: the {what} {value:g} is not a class number ({allowed})."
            )
        return int(value)

    def result(self) -> dict[str, float]:
        metrics: dict[str, float] = {"rows": self.rows, "accuracy": self.correct / self.rows}
        if self.probabilities:
            metrics["logloss"] = self.log_loss.value / self.rows
        return metrics
