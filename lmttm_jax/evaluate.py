"""MedMNIST metrics (ACC/AUC as `medmnist.evaluator` defines them, computed with
scikit-learn so that `medmnist` and its PyTorch are not needed), the metrics of an
imbalanced set beside them, model selection and the evaluator's file name.
"""

import math

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


def report(labels: np.ndarray, probs: np.ndarray, task: str, names: tuple[str, ...]) -> dict:
    """At MedMNIST's decision rule (`predicted_labels`): for a binary task the
    sensitivity and specificity (recall of class 1 and of class 0), balanced accuracy
    and F1 of class 1; for a multi-class task the balanced accuracy (mean recall), the
    macro F1 and each class's one-vs-rest AUC. Undefined values are NaN."""
    labels = np.asarray(labels).reshape(-1)
    preds = predicted_labels(np.asarray(probs, np.float64), task)
    matrix = np.asarray(confusion_matrix(labels, preds, len(names)), np.float64)
    tp, support, predicted = np.diag(matrix), matrix.sum(1), matrix.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, math.nan)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), math.nan)
    out = {"balanced_accuracy": float(np.nanmean(recall)) if np.any(support) else math.nan}
    if task == "binary-class":
        return {"sensitivity": float(recall[1]), "specificity": float(recall[0]), **out,
                "f1": float(f1[1])}  # fmt: skip
    aucs = {
        name: float(roc_auc_score(labels == c, probs[:, c]))
        if 0 < (labels == c).sum() < len(labels)
        else math.nan
        for c, name in enumerate(names)
    }
    return {**out, "f1_macro": float(np.nanmean(f1)), "auc_per_class": aucs}


def describe(metrics: dict) -> str:
    """One line of a split's scalar metrics, ACC and AUC first."""
    first = [k for k in ("acc", "auc") if k in metrics]
    rest = [k for k, v in metrics.items() if k not in first and isinstance(v, float)]
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in first + rest)


def is_better(candidate: dict[str, float], best: dict[str, float] | None) -> bool:
    """Model selection: higher validation AUC, then higher ACC; NaN AUC counts as lowest."""

    def key(m: dict[str, float]) -> tuple[float, float]:
        return (-math.inf if math.isnan(m["auc"]) else m["auc"], m["acc"])

    return best is None or key(candidate) > key(best)


def evaluation_csv_name(
    flag: str, size: int, split: str, metrics: dict[str, float], run: str
) -> str:
    """The MedMNIST evaluator's file name: `{flag}{_size}_{split}_[AUC]x_[ACC]y@{run}.csv`."""
    size_flag = "" if size == 28 else f"_{size}"
    return (
        f"{flag}{size_flag}_{split}_[AUC]{metrics['auc']:.3f}_[ACC]{metrics['acc']:.3f}@{run}.csv"
    )
