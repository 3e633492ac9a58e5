"""An ensemble as one run: `config.train.ensemble = k` members in one workdir, their
class probabilities averaged.

  python main.py --config=configs/adrenal.py:scale=tiny --config.train.ensemble=3

Member i is an ordinary single run in `<workdir>/members/<i>/` (`Workdir.member`),
with `train.ensemble` 0 and
- `train.ensemble_mode="seeds"`: seed + i, on the same train/val split;
- `train.ensemble_mode="folds"`: the pooled train+val minus stratified fold i of k
  (`config.data.folds=k, fold=i`), validated on fold i: every sample trains k-1
  members and is held out from one.
Each member is selected on its own validation and resumes as any run does: a
finished member is read back, never retrained; an interrupted one resumes.
`train.ensemble_jobs = n > 1` trains n members at a time, each in a child process
on one CPU thread (`lmttm_jax.run_processes`; output in the member's `train.log`);
on an accelerator they and this process then take its memory as they need it
(`run_processes.without_preallocation`).
One thread rounds differently from many, so the field can change the members'
numbers (in their last bits, then onwards): it is part of the run's config like any
training field, and a started ensemble keeps its value.

The top-level `results.json` is the ensemble's: `test` = the metrics of the
members' averaged test probabilities (each member's with TTA if `data.tta`); `val` =
for seeds the averaged validation probabilities, for folds the out-of-fold
predictions over train+val (`val_kind` says which); `members` = each member's own
figures. The MedMNIST-format CSV holds the averaged prediction.

`train.train_and_evaluate` dispatches here and hands in its single-run path as a
`SingleRun` (this module does not import `train`).
"""

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lmttm_jax import config_check, evaluate, parallel, run_processes
from lmttm_jax import data as data_lib
from lmttm_jax.data import folder
from lmttm_jax.workdir import Workdir

Split = tuple[np.ndarray, np.ndarray]  # uint8 images [N, S, S, S], int labels [N]
VAL_KINDS = {
    "seeds": "the members' averaged probabilities on the validation split",
    "folds": "out-of-fold: each train+val sample predicted by the member that held it out",
}


@dataclasses.dataclass(frozen=True)
class SingleRun:
    """What an ensemble needs of the single-run path (`lmttm_jax.train` provides it).

    `train(config, workdir)`: trains or resumes one run, returns its results.
    `probabilities(config, [(workdir, {split: (images, labels)})])`: for each run, the
    class probabilities `[N, C]` of its best checkpoint on each split.
    `data(config)`: the dataset's registry entry and `{split: (images, labels) or None}`.
    `log(message)`: progress for the user.
    """

    train: Callable[[ml_collections.ConfigDict, Path], dict]
    probabilities: Callable[
        [ml_collections.ConfigDict, Sequence[tuple[Path, dict[str, Split]]]],
        list[dict[str, np.ndarray]],
    ]
    data: Callable[
        [ml_collections.ConfigDict], tuple[data_lib.DatasetInfo, dict[str, Split | None]]
    ]
    log: Callable[[str], None]


def size(config: ml_collections.ConfigDict) -> int:
    """The number of models `config` trains (1 without an ensemble)."""
    return max(config.train.ensemble, 1)


def member_config(config: ml_collections.ConfigDict, index: int) -> ml_collections.ConfigDict:
    """The single-run config of member `index` of the ensemble `config`."""
    member = config_check.validate_config(config)
    member.train.ensemble, member.train.ensemble_mode = 0, "seeds"
    member.train.ensemble_jobs = 1  # a member is a single run
    if config.train.ensemble_mode == "seeds":
        member.seed = config.seed + index
    else:
        member.data.folds, member.data.fold = config.train.ensemble, index
    return member


def check_ensemble(config: ml_collections.ConfigDict) -> None:
    """Seeds of a folder dataset whose `labels.csv` has no `split` column would each
    draw another split (test included): refused, with what to do."""
    if config.data.name != data_lib.FOLDER_FLAG or config.train.ensemble_mode != "seeds":
        return
    if not folder.read_table(config.data.root).has_split:
        raise config_check.ConfigError(
            f"config.train.ensemble_mode='seeds' on the folder {config.data.root}: its "
            f"labels.csv has no split column, so each member's seed would draw another "
            f"split; add the column or use config.train.ensemble_mode='folds'"
        )


def member_splits(
    config: ml_collections.ConfigDict, splits: dict[str, Split | None]
) -> tuple[list[dict[str, Split]], np.ndarray | None]:
    """Each member's evaluation splits (its own `val`, and `test` where there is one),
    and for folds the fold of every pooled train+val sample `[N]` (None for seeds)."""
    k, test = size(config), splits["test"]
    extra = {} if test is None else {"test": test}
    if config.train.ensemble_mode == "seeds":
        return [{"val": splits["val"], **extra} for _ in range(k)], None
    images, labels = data_lib.pool(splits["train"], splits["val"])
    fold = data_lib.stratified_folds(labels, k)
    return [{"val": (images[fold == i], labels[fold == i]), **extra} for i in range(k)], fold


def combine(
    config: ml_collections.ConfigDict,
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


def train_member(single: SingleRun, config: ml_collections.ConfigDict, run: Workdir) -> dict:
    """Trains or resumes one member; a finished member is read back untouched (after
    checking it was trained with `config`)."""
    if run.results_path.exists():
        run.check_config(config)
        return run.read_results()
    return single.train(config, run.path)


def train_members(
    config: ml_collections.ConfigDict,
    configs: list[ml_collections.ConfigDict],
    run: Workdir,
    single: SingleRun,
) -> list[dict]:
    """Each member's results, trained (or read back) `config.train.ensemble_jobs` at a
    time: one after the other in this process, or side by side in single-threaded
    child processes (`run_processes`)."""
    k, mode = size(config), config.train.ensemble_mode
    members = [
        run_processes.Run(f"member{i}", member, run.member(i).path)
        for i, member in enumerate(configs)
    ]

    def train_one(member: ml_collections.ConfigDict, path: Path) -> dict:
        i = int(path.name)
        single.log(f"ensemble member {i + 1}/{k} ({mode}) in {run.member(i)}")
        return train_member(single, member, Workdir(path))

    results = run_processes.train_runs(members, config.train.ensemble_jobs, train_one)
    return [results[m.name] for m in members]


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
    for split in ("val", "test"):
        row[split] = None
        if split in splits:
            row[split] = evaluate.medmnist_metrics(splits[split][1], probs[split], task)
    return row


def train_ensemble(
    config: ml_collections.ConfigDict, workdir: str | Path, single: SingleRun
) -> dict:
    """Trains (or resumes) every member of the validated `config` in `workdir`, then
    writes the ensemble's `results.json` and CSV; returns the results."""
    if config.train.ensemble_jobs > 1:  # before this process opens the device
        run_processes.without_preallocation(os.environ)
    run, main = Workdir(workdir), parallel.is_main_process()
    run.check_config(config)
    check_ensemble(config)
    run.begin_writing(single.log, lock=main)
    try:
        changes = run.check_config(config)  # again, holding the lock
        if main:
            if changes:
                single.log(f"note: {run.config_path} updated: {'; '.join(changes)}")
            run.write_config(config)
        if run.results_path.exists():
            single.log(f"{run} is finished: results in {run.results_path}")
            return run.read_results()
        return _train_ensemble(config, run, single, main)
    finally:
        run.end_writing()


def _train_ensemble(
    config: ml_collections.ConfigDict, run: Workdir, single: SingleRun, main: bool
) -> dict:
    k, mode = size(config), config.train.ensemble_mode
    configs = [member_config(config, i) for i in range(k)]
    results = train_members(config, configs, run, single)
    info, splits = single.data(config)
    evaluated, fold = member_splits(config, splits)
    probs = single.probabilities(config, [(run.member(i).path, evaluated[i]) for i in range(k)])
    members = [
        member_row(configs[i], i, results[i], evaluated[i], probs[i], info.task) for i in range(k)
    ]
    combined = combine(config, splits, probs, fold)
    out, report = ensemble_results(config, info, combined)
    out["members"] = members
    out["parameters"] = results[0].get("parameters")
    if main:
        tag = f"{config.model.name}-ensemble{k}{mode}-seed{config.seed}"
        name = evaluate.evaluation_csv_name(info.flag, config.data.size, report, out[report], tag)
        run.write_predictions_csv(name, combined[report][1])
        run.write_json(run.results_path, out)
    for split in combined:
        m = out[split]
        single.log(f"ensemble of {k} ({mode}): {split}  acc {m['acc']:.4f}  auc {m['auc']:.4f}")
    return out


def ensemble_results(
    config: ml_collections.ConfigDict,
    info: data_lib.DatasetInfo,
    combined: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, Any], str]:
    """The ensemble's results (without its members) from its combined probabilities,
    and the split the confusion matrix and CSV report (`test`, else `val`)."""
    mode = config.train.ensemble_mode
    out: dict[str, Any] = {
        "dataset": info.flag,
        "size": config.data.size,
        "model": config.model.name,
        "seed": config.seed,
        "ensemble": {"members": size(config), "mode": mode},
        "val_kind": VAL_KINDS[mode],
    }
    metrics = {s: evaluate.medmnist_metrics(*pair, info.task) for s, pair in combined.items()}
    out["val"], out["test"] = metrics["val"], metrics.get("test")
    if out["test"] is None:
        out["test_missing"] = (
            "cross-validation does not read the test split"
            if config.data.folds
            else "the dataset file has no test split"
        )
    report = "test" if "test" in combined else "val"
    labels, final = combined[report]
    preds = evaluate.predicted_labels(final, info.task)
    out["confusion_matrix"] = evaluate.confusion_matrix(labels, preds, info.n_classes)
    out["confusion_matrix_split"] = report
    return out, report
