"""Raw tabular data into the built-in XGBoost's CSV format, split the way the seed does.

Categorical columns are encoded as numbers, the label goes first, no header, no index; the rows
are split 70/30 into train+validation and test, then 70/30 again into train and validation.
test.csv keeps its label in column 0 because the stack scores itself (InputFilter "$[1:]").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

RANDOM_STATE = 42
TEST_SIZE = 0.3


@dataclass(frozen=True)
class PreparedData:
    train: Path
    validation: Path
    test: Path

    def files(self) -> dict[str, Path]:
        return {"train.csv": self.train, "validation.csv": self.validation, "test.csv": self.test}


def to_builtin_format(raw: pd.DataFrame, label: str) -> pd.DataFrame:
    """Numeric columns only, label first; categories become sorted codes (F, I, M: 0, 1, 2)."""
    if label not in raw.columns:
        raise ValueError(f"no label column {label!r}; the columns are {', '.join(raw.columns)}")
    frame = raw.copy()
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = pd.Categorical(frame[column]).codes
    return frame[[label, *(c for c in frame.columns if c != label)]]


def split(
    frame: pd.DataFrame, random_state: int = RANDOM_STATE
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) as the seed splits: test_size 0.3, then 0.3 of the rest."""
    rest, test = train_test_split(frame, test_size=TEST_SIZE, random_state=random_state)
    train, validation = train_test_split(rest, test_size=TEST_SIZE, random_state=random_state)
    return train, validation, test


def prepare(
    raw_csv: Path, out_dir: Path, label: str | None = None, random_state: int = RANDOM_STATE
) -> PreparedData:
    """Write train.csv, validation.csv and test.csv for the stack; the label defaults to the
    last column."""
    raw = pd.read_csv(raw_csv)
    frame = to_builtin_format(raw, label or str(raw.columns[-1]))
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared = PreparedData(out_dir / "train.csv", out_dir / "validation.csv", out_dir / "test.csv")
    for part, path in zip(split(frame, random_state), prepared.files().values(), strict=True):
        part.to_csv(path, header=False, index=False)
    return prepared
