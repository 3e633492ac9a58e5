"""Whether a difference between two models is real: paired comparisons with intervals.

DeLong's test follows DeLong, DeLong and Clarke-Pearson (Biometrics 1988), its
placements computed with midranks as in Sun and Xu (IEEE SPL 2014).
"""

import math
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats


def paired_differences(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """`a [n]`, `b [n]` (the same folds and seeds) -> mean of a - b, its 95 % t-interval
    (NaN bounds for one pair), and how often a is above, level with, below b."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n, mean = len(diff), float(diff.mean())
    half = math.nan
    if n > 1:
        half = float(scipy_stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    return {
        "n": n,
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "wins": int(np.sum(diff > 0)),
        "ties": int(np.sum(diff == 0)),
        "losses": int(np.sum(diff < 0)),
    }


def _placements(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """DeLong's structural components of one model: for each positive the fraction of
    negatives it outscores (ties half) `[m]`, for each negative the fraction of
    positives that outscore it `[n]`, and the AUC."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    m, n = len(pos), len(neg)
    midranks = scipy_stats.rankdata  # 1-based, ties given their mean rank
    both = midranks(np.concatenate([pos, neg]))
    v10 = (both[:m] - midranks(pos)) / n
    v01 = 1.0 - (both[m:] - midranks(neg)) / m
    return v10, v01, float(v10.mean())


def delong(labels: np.ndarray, p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """DeLong's test of AUC(p) = AUC(q) for scores of class 1 `p [N]`, `q [N]` of the
    same samples with binary `labels [N]`: each AUC, the difference, its standard error
    and 95 % interval, z and a two-sided p-value."""
    labels = np.asarray(labels).reshape(-1)
    if set(np.unique(labels)) != {0, 1}:
        raise ValueError("DeLong's test needs binary labels with both classes present")
    (v10p, v01p, auc_p), (v10q, v01q, auc_q) = (
        _placements(labels, np.asarray(s, np.float64)) for s in (p, q)
    )
    s10 = np.cov(np.stack([v10p, v10q]))  # [2, 2] over the positives
    s01 = np.cov(np.stack([v01p, v01q]))  # [2, 2] over the negatives
    cov = s10 / len(v10p) + s01 / len(v01p)
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_p - auc_q
    se = math.sqrt(max(var, 0.0))
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {
        "auc_a": auc_p,
        "auc_b": auc_q,
        "diff": diff,
        "se": se,
        "low": diff - 1.959963984540054 * se,
        "high": diff + 1.959963984540054 * se,
        "z": z,
        "p": float(2 * scipy_stats.norm.sf(abs(z))),
    }


Metric = Callable[[np.ndarray, np.ndarray], float]  # (labels [N], probs [N, C]) -> value


def paired_bootstrap(
    labels: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    metric: Metric,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """The difference metric(p) - metric(q) on all samples and its 95 % percentile
    interval over `samples` resamples of the samples (the same rows for both models;
    a resample where the metric is undefined is drawn again)."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    diffs: list[float] = []
    while len(diffs) < samples:
        rows = rng.integers(0, len(labels), len(labels))
        d = metric(labels[rows], p[rows]) - metric(labels[rows], q[rows])
        if math.isfinite(d):
            diffs.append(d)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {
        "diff": metric(labels, p) - metric(labels, q),
        "low": float(low),
        "high": float(high),
        "samples": samples,
    }
