"""MedMNIST metrics (ACC/AUC as `medmnist.evaluator` defines them) and the result
files a run writes.

The metrics are computed here with scikit-learn, so that `medmnist` (whose
dependencies include PyTorch) is not needed; `tests/test_train.py` checks them
against `medmnist.evaluator.getAUC/getACC` when `medmnist` is installed.
"""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


def medmnist_metrics(labels: np.ndarray, probs: np.ndarray, task: str) -> dict[str, float]:
    """`labels [N]`, class probabilities `probs [N, C]` -> {"auc", "acc"}.

    MedMNIST's definitions: binary tasks score P(class 1) (AUC of it, ACC at > 0.5),
    multi-class tasks use the mean over classes of each class's one-vs-rest AUC and
    argmax ACC. AUC is NaN when a split lacks a class (AUC is undefined there).
    """
    labels, probs = np.asarray(labels).reshape(-1), np.asarray(probs, dtype=np.float64)
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels but {len(probs)} predictions")
    if task not in ("binary-class", "multi-class"):
        raise ValueError(f"unknown task {task!r}: expected binary-class or multi-class")
    try:
        if task == "binary-class":
            auc = float(roc_auc_score(labels, probs[:, -1]))
        else:
            per_class = [
                roc_auc_score((labels == c).astype(float), probs[:, c])
                for c in range(probs.shape[1])
            ]
            auc = float(sum(per_class) / probs.shape[1])
    except ValueError:
        auc = math.nan
    acc = float(np.mean(predicted_labels(probs, task) == labels)) if len(labels) else math.nan
    return {"auc": auc, "acc": acc}


def predicted_labels(probs: np.ndarray, task: str) -> np.ndarray:
    """The labels that `getACC` counts as predicted: `[N, C] -> [N]`."""
    if task == "binary-class":
        return (probs[:, -1] > 0.5).astype(np.int64)
    return np.argmax(probs, axis=-1)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> list[list[int]]:
    """`[C, C]` counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(preds)), 1)
    return matrix.tolist()


def is_better(candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    """Model selection: higher validation AUC, then higher ACC; NaN AUC counts as lowest."""
    if best is None:
        return True

    def key(m: dict[str, float]) -> tuple[float, float]:
        return (-math.inf if math.isnan(m["auc"]) else m["auc"], m["acc"])

    return key(candidate) > key(best)


def evaluation_csv_name(
    flag: str, size: int, split: str, metrics: dict[str, float], run: str
) -> str:
    """The MedMNIST evaluator's file name: `{flag}{_size}_{split}_[AUC]x_[ACC]y@{run}.csv`."""
    size_flag = "" if size == 28 else f"_{size}"
    return (
        f"{flag}{size_flag}_{split}_[AUC]{metrics['auc']:.3f}_[ACC]{metrics['acc']:.3f}@{run}.csv"
    )


def write_predictions_csv(path: Path, probs: np.ndarray) -> None:
    """One line per sample, `index,p_0,...,p_{C-1}`, as the MedMNIST evaluator reads it."""
    lines = [",".join([str(i)] + [repr(float(p)) for p in row]) for i, row in enumerate(probs)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Atomic, indented JSON (NaN written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=1) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj
