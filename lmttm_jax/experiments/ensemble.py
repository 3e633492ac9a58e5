"""An ensemble as one run: `config.train.ensemble = k` members in one workdir, their
class probabilities averaged.

  python main.py --config=configs/adrenal.py:scale=tiny --config.train.ensemble=3

Member i is an ordinary single run in `<workdir>/members/<i>/` (`Workdir.member`),
selected on its own validation; with `train.ensemble_mode="folds"` it is validated on
stratified fold i of the pooled train+val. `train.ensemble_jobs = n > 1` trains n
members at a time in child processes (`experiments.pool`; output in the member's
`train.log`).

The top-level `results.json` is the ensemble's: `test` and `val` are the metrics of the
members' averaged probabilities, `val` out-of-fold over train+val for folds
(`val_kind` says which); `members` = each member's own figures. A rerun of a finished
ensemble with a member missing trains it and combines the ensemble anew.
"""

import os
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lmttm_jax import config as config_lib
from lmttm_jax import data as data_lib
from lmttm_jax import evaluate, inference, parallel, train
from lmttm_jax.data import folder
from lmttm_jax.experiments import pool
from lmttm_jax.workdir import Workdir

Split = tuple[np.ndarray, np.ndarray]  # uint8 images [N, S, S, S], int labels [N]
VAL_KINDS = {
    "seeds": "the members' averaged probabilities on the validation split",
    "folds": "out-of-fold: each train+val sample predicted by the member that held it out",
}


def member_config(config: ml_collections.ConfigDict, index: int) -> ml_collections.ConfigDict:
    """The single-run config of member `index` of the ensemble `config`."""
    single = {"train.ensemble": 0, "train.ensemble_mode": "seeds", "train.ensemble_jobs": 1}
    if config.train.ensemble_mode == "seeds":
        return config_lib.copy(config, **single, seed=config.seed + index)
    return config_lib.copy(
        config, **single, **{"data.folds": config.train.ensemble, "data.fold": index}
    )


def check_ensemble(config: ml_collections.ConfigDict) -> None:
    """Seeds of a folder dataset whose `labels.csv` has no `split` column would each
    draw another split (test included): refused, with what to do."""
    if config.data.name != data_lib.FOLDER_FLAG or config.train.ensemble_mode != "seeds":
        return
    if not folder.read_table(config.data.root).has_split:
        raise config_lib.ConfigError(
            f"config.train.ensemble_mode='seeds' on the folder {config.data.root}: its "
            f"labels.csv has no split column, so each member's seed would draw another "
            f"split; add the column or use config.train.ensemble_mode='folds'"
        )


def member_splits(
    config: ml_collections.ConfigDict, splits: dict[str, Split | None]
) -> tuple[list[dict[str, Split]], np.ndarray | None]:
    """Each member's evaluation splits (its own `val`, and `test` where there is one),
    and for folds the fold of every pooled train+val sample `[N]` (None for seeds)."""
    k, test = inference.members(config), splits["test"]
    extra = {} if test is None else {"test": test}
    if config.train.ensemble_mode == "seeds":
        return [{"val": splits["val"], **extra} for _ in range(k)], None
    images, labels = data_lib.pool(splits["train"], splits["val"])
    fold = data_lib.stratified_folds(labels, k)
    return [{"val": (images[fold == i], labels[fold == i]), **extra} for i in range(k)], fold


def combine(
    splits: dict[str, Split | None],
    probs: list[dict[str, np.ndarray]],
    fold: np.ndarray | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (labels [N], ensemble probabilities [N, C])}: `val` averaged (seeds) or
    out-of-fold over train+val (folds), `test` averaged when there is one."""
    out = {}
    if fold is None:
        out["val"] = (splits["val"][1], np.mean([p["val"] for p in probs], axis=0))
    else:
        labels = np.concatenate([splits["train"][1], splits["val"][1]])  # as pooled
        oof = np.zeros((len(labels), probs[0]["val"].shape[1]), probs[0]["val"].dtype)
        for i, p in enumerate(probs):
            oof[fold == i] = p["val"]
        out["val"] = (labels, oof)
    if splits["test"] is not None:
        out["test"] = (splits["test"][1], np.mean([p["test"] for p in probs], axis=0))
    return out


def train_members(configs: list[ml_collections.ConfigDict], run: Workdir, jobs: int) -> list[dict]:
    """Each member's results, trained (or read back) `jobs` at a time: one after the
    other in this process, or side by side in single-threaded child processes."""
    runs = [pool.Run(f"member{i}", c, run.member(i).path) for i, c in enumerate(configs)]

    def train_one(member: ml_collections.ConfigDict, path: Path) -> dict:
        i = int(path.name)
        train.log(f"ensemble member {i + 1}/{len(configs)} in {run.member(i)}")
        return train.train_and_evaluate(member, path)

    results = pool.train_runs(runs, jobs, train_one)
    return [results[r.name] for r in runs]


def probabilities(
    config: ml_collections.ConfigDict, run: Workdir, splits: list[dict[str, Split]]
) -> list[dict[str, np.ndarray]]:
    """Each member's probabilities `[N, C]` on each of its evaluation `splits` (one
    compilation for all)."""
    restored = inference.restore(run.path, config)
    steps = train.Steps(config, parallel.make_mesh(), restored.model)
    batch, task = config.train.eval_batch_size, restored.info.task
    out = []
    for params, own in zip(restored.params, splits, strict=True):
        out.append(
            {n: train.evaluate_split(steps, params, s, batch, task)[1] for n, s in own.items()}
        )
    return out


def member_row(
    config: ml_collections.ConfigDict,
    index: int,
    result: dict,
    splits: dict[str, Split],
    probs: dict[str, np.ndarray],
    task: str,
) -> dict[str, Any]:
    """One member's figures: its seed (and fold), best epoch, and the metrics of its
    probabilities `probs` on its evaluation `splits` (val, and test if present)."""
    row: dict[str, Any] = {"member": index, "seed": config.seed}
    if config.data.folds:
        row["fold"] = config.data.fold
    row["best_epoch"] = result["best_epoch"]
    metrics = {s: evaluate.medmnist_metrics(y, probs[s], task) for s, (_, y) in splits.items()}
    return {**row, "val": metrics.get("val"), "test": metrics.get("test")}


def train_ensemble(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """Trains (or resumes) every member of the checked `config` in `workdir`, then
    writes the ensemble's `results.json` and CSV; returns the results."""
    if config.train.ensemble_jobs > 1:  # the children share the device: read when it opens
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    run = Workdir(workdir)
    run.check_config(config, config_lib.stored_config(run.path))
    check_ensemble(config)
    try:
        finished = train.begin_run(run, config)
        k = inference.members(config)
        missing = [i for i in range(k) if not run.member(i).results_path.exists()]
        if finished is not None:
            if not missing:
                return finished
            train.log(f"member(s) {missing} of {run} are not finished: training them again")
        return _train_ensemble(config, run)
    finally:
        run.end_writing()


def _train_ensemble(config: ml_collections.ConfigDict, run: Workdir) -> dict:
    k, mode = inference.members(config), config.train.ensemble_mode
    configs = [member_config(config, i) for i in range(k)]
    results = train_members(configs, run, config.train.ensemble_jobs)
    info, splits = train.dataset_splits(config)
    evaluated, fold = member_splits(config, splits)
    probs = probabilities(config, run, evaluated)
    combined = combine(splits, probs, fold)
    out = ensemble_results(config, info, combined)
    out["members"] = [
        member_row(configs[i], i, results[i], evaluated[i], probs[i], info.task) for i in range(k)
    ]
    out["parameters"] = results[0].get("parameters")
    for split in combined:
        train.log(f"ensemble of {k} ({mode}): {split}  {evaluate.describe(out[split])}")
    report = "test" if "test" in combined else "val"  # the split of the confusion matrix, CSV
    tag = f"{config.model.name}-ensemble{k}{mode}-seed{config.seed}"
    out.update(train.report_files(run, info, config.data.size, report, combined, out[report], tag))
    if parallel.is_main_process():
        run.write_json(run.results_path, out)
    return out


def ensemble_results(
    config: ml_collections.ConfigDict,
    info: data_lib.DatasetInfo,
    combined: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """The ensemble's results (without its members) from its combined probabilities."""
    metrics = {
        s: {
            **evaluate.medmnist_metrics(*pair, info.task),
            **evaluate.report(*pair, info.task, info.label_names),
        }
        for s, pair in combined.items()
    }
    mode = config.train.ensemble_mode
    out: dict[str, Any] = {
        "dataset": info.flag,
        "size": config.data.size,
        "model": config.model.name,
        "seed": config.seed,
        "ensemble": {"members": inference.members(config), "mode": mode},
        "val_kind": VAL_KINDS[mode],
        "val": metrics["val"],
        "test": metrics.get("test"),
    }
    if out["test"] is None:
        out["test_missing"] = (
            "cross-validation does not read the test split"
            if config.data.folds
            else "the dataset file has no test split"
        )
    return out
