"""Paired comparisons (`lmttm_jax.stats`) against independent computations, and the
command that compares two finished runs."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lmttm_jax import evaluate, stats
from lmttm_jax.workdir import Workdir

REPO = Path(__file__).resolve().parents[1]


def test_paired_differences_by_hand():
    a, b = [0.80, 0.85, 0.90, 0.70], [0.78, 0.85, 0.86, 0.75]
    d = stats.paired_differences(a, b)  # differences 0.02, 0, 0.04, -0.05
    assert d["mean"] == pytest.approx(0.0025)
    sd = np.std([0.02, 0.0, 0.04, -0.05], ddof=1)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) * sd / sqrt(4)
    assert (d["low"], d["high"]) == pytest.approx((0.0025 - half, 0.0025 + half))
    assert (d["wins"], d["ties"], d["losses"], d["n"]) == (2, 1, 1, 4)
    one = stats.paired_differences([0.9], [0.8])
    assert one["mean"] == pytest.approx(0.1) and math.isnan(one["low"])


def brute_force_delong(labels, p, q):
    """DeLong's variance of AUC(p) - AUC(q) from its definition: the kernel over every
    (positive, negative) pair, O(m n)."""

    def psi(x, y):
        return (x > y) + 0.5 * (x == y)

    pos, neg = labels == 1, labels == 0
    comps = []
    for s in (p, q):
        kernel = psi(s[pos][:, None], s[neg][None, :])  # [m, n]
        comps.append((kernel.mean(1), kernel.mean(0), kernel.mean()))
    (v10p, v01p, ap), (v10q, v01q, aq) = comps
    m, n = pos.sum(), neg.sum()

    def cov(x, y):
        return np.sum((x - x.mean()) * (y - y.mean())) / (len(x) - 1)

    var = (cov(v10p, v10p) + cov(v10q, v10q) - 2 * cov(v10p, v10q)) / m
    var += (cov(v01p, v01p) + cov(v01q, v01q) - 2 * cov(v01p, v01q)) / n
    return ap, aq, math.sqrt(var)


def scores(seed: int, n: int = 150):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(int)
    p = np.round(labels * 0.8 + rng.normal(size=n), 1)  # rounded: ties included
    q = np.round(p * 0.5 + labels * 0.3 + rng.normal(size=n), 1)
    return labels, p, q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_its_definition_computed_by_brute_force(seed):
    labels, p, q = scores(seed)
    ap, aq, se = brute_force_delong(labels, p, q)
    d = stats.delong(labels, p, q)
    assert d["auc_a"] == pytest.approx(roc_auc_score(labels, p)) == pytest.approx(ap)
    assert d["auc_b"] == pytest.approx(aq)
    assert d["se"] == pytest.approx(se, rel=1e-10)
    assert d["p"] == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(abs(d["z"]) / math.sqrt(2)))))


def test_delong_agrees_with_a_bootstrap_of_the_auc_difference():
    labels, p, q = scores(3, n=400)
    d = stats.delong(labels, p, q)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(2000):
        rows = rng.integers(0, len(labels), len(labels))
        if 0 < labels[rows].sum() < len(rows):
            diffs.append(
                roc_auc_score(labels[rows], p[rows]) - roc_auc_score(labels[rows], q[rows])
            )
    assert np.std(diffs) == pytest.approx(d["se"], rel=0.1)


def test_the_hanley_mcneil_ratings_example():
    """Hanley and McNeil (Radiology 1982), 109 CT images rated 1-5: 58 normal with
    ratings counts (33, 6, 6, 11, 2), 51 abnormal with (3, 2, 2, 11, 33); published
    AUC 0.893."""
    normal = np.repeat(np.arange(1, 6), [33, 6, 6, 11, 2])
    abnormal = np.repeat(np.arange(1, 6), [3, 2, 2, 11, 33])
    labels = np.r_[np.zeros(58, int), np.ones(51, int)]
    ratings = np.r_[normal, abnormal].astype(float)
    d = stats.delong(labels, ratings, ratings)
    assert round(d["auc_a"], 3) == 0.893
    assert d["diff"] == 0 and d["se"] == 0 and d["p"] == 1.0


def test_paired_bootstrap_resamples_rows_jointly():
    labels, p, q = scores(4, n=60)
    probs_p, probs_q = (
        np.stack([1 - s, s], 1) for s in (1 / (1 + np.exp(-p)), 1 / (1 + np.exp(-q)))
    )

    def acc(y, probs):
        return evaluate.medmnist_metrics(y, probs, "binary-class")["acc"]

    got = stats.paired_bootstrap(labels, probs_p, probs_q, acc, samples=200, seed=7)
    rng = np.random.default_rng(7)  # the same draws, by hand
    diffs = []
    for _ in range(200):
        rows = rng.integers(0, 60, 60)
        diffs.append(acc(labels[rows], probs_p[rows]) - acc(labels[rows], probs_q[rows]))
    assert (got["low"], got["high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    assert got["diff"] == pytest.approx(acc(labels, probs_p) - acc(labels, probs_q))


def fake_run(path: Path, labels: np.ndarray, probs: np.ndarray) -> Path:
    run = Workdir(path)
    path.mkdir(parents=True)
    run.write_scores({"val": (labels, probs)})
    run.write_json(run.results_path, {"confusion_matrix_split": "val"})
    return path


def test_compare_command_on_two_runs(tmp_path):
    labels, p, q = scores(5, n=80)
    sig = [np.stack([1 - s, s], 1) for s in (1 / (1 + np.exp(-p)), 1 / (1 + np.exp(-q)))]
    a = fake_run(tmp_path / "a", labels, sig[0])
    b = fake_run(tmp_path / "b", labels, sig[1])
    out = tmp_path / "c.json"
    args = [sys.executable, "-m", "lmttm_jax.compare", str(a), str(b), f"--json={out}"]
    proc = subprocess.run([*args, "--samples=100"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["auc_delong"]["diff"] == pytest.approx(stats.delong(labels, p, q)["diff"])
    assert "DeLong 95%" in proc.stdout and "paired bootstrap" in proc.stdout
    other = fake_run(tmp_path / "c", labels[::-1].copy(), sig[1])
    proc = subprocess.run([sys.executable, "-m", "lmttm_jax.compare", str(a), str(other)],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode == 2 and "not scored on the same val samples" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("task, classes", [("binary-class", 2), ("multi-class", 4)])
def test_report_metrics_match_scikit_learn(task, classes):
    from sklearn import metrics

    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 200)
    probs = rng.dirichlet(np.ones(classes), 200)
    probs[np.arange(200), labels] += 0.3 * rng.random(200)
    probs /= probs.sum(1, keepdims=True)
    names = tuple(f"c{i}" for i in range(classes))
    got = evaluate.report(labels, probs, task, names)
    preds = evaluate.predicted_labels(probs, task)
    assert got["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(labels, preds))
    if task == "binary-class":
        assert got["sensitivity"] == pytest.approx(metrics.recall_score(labels, preds))
        assert got["specificity"] == pytest.approx(metrics.recall_score(labels, preds, pos_label=0))
        assert got["f1"] == pytest.approx(metrics.f1_score(labels, preds))
        return
    assert got["f1_macro"] == pytest.approx(metrics.f1_score(labels, preds, average="macro"))
    for c, name in enumerate(names):
        assert got["auc_per_class"][name] == pytest.approx(roc_auc_score(labels == c, probs[:, c]))
    assert np.mean(list(got["auc_per_class"].values())) == pytest.approx(
        evaluate.medmnist_metrics(labels, probs, task)["auc"]
    )
