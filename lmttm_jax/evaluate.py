"""MedMNIST metrics (ACC/AUC exactly as `medmnist.evaluator` defines them) and the
result files a run writes."""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lmttm_jax.data import medmnist_module


def medmnist_metrics(labels: np.ndarray, probs: np.ndarray, task: str) -> dict[str, float]:
    """`labels [N]`, class probabilities `probs [N, C]` -> {"auc", "acc"}.

    Uses `medmnist.evaluator.getAUC/getACC`: binary tasks score P(class 1) (ACC at
    0.5), multi-class tasks use macro one-vs-rest AUC and argmax ACC. AUC is NaN when
    a split lacks one of the classes (AUC is undefined there).
    """
    evaluator = medmnist_module("evaluator")
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels but {len(probs)} predictions")
    try:
        auc = float(evaluator.getAUC(labels, probs, task))
    except ValueError:
        auc = math.nan
    return {"auc": auc, "acc": float(evaluator.getACC(labels, probs, task))}


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
