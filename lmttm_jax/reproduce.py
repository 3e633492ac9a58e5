"""The results table: every (dataset, model, seed) trained under one protocol.

  python -m lmttm_jax.reproduce --datasets=adrenalmnist3d,synthetic3d \
      --models=lmttm,ttm --seeds=3 [--variant=scale=cpu] [--folds=5] [--out=results]

Each run is `main.py`'s training (selection on validation, test evaluated once) in
`<out>/runs/<dataset>-<model>-seed<k>`; a finished run is read back, an interrupted
one resumes. `<out>/table.md` and `<out>/table.json` give mean ± std over seeds of
test ACC/AUC (validation where the dataset file has no test split), next to the
published rows (`published_results.json`, with its sources).

Any config field can be overridden for every run with `--config.<path>=<value>`
(e.g. `--config.train.epochs=80 --config.model.dropout=0.1`), and `--data_root` sets
the folder holding the dataset files.

With `--folds=K`, every (dataset, model, seed) is trained K times instead, once per
stratified fold of the pooled train+val (`config.data.folds`), in
`<out>/runs/<dataset>-<model>-cv<K>-fold<f>-seed<k>`; the table gives mean ± std
over folds and seeds of the held-out folds' ACC/AUC, and the test split is not read.
"""

import ast
import importlib
import itertools
import json
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags, logging

from lmttm_jax import cli, config_check, evaluate, huge_pages, train
from lmttm_jax.data import DatasetError
from lmttm_jax.workdir import Workdir, WorkdirError

CONFIG_MODULES = {
    "organmnist3d": "organ",
    "nodulemnist3d": "nodule",
    "adrenalmnist3d": "adrenal",
    "fracturemnist3d": "fracture",
    "vesselmnist3d": "vessel",
    "synapsemnist3d": "synapse",
    "synthetic3d": "synthetic",
}
PUBLISHED_ROWS = ("LMTTM", "TTM", "ResNet-18+3D", "ResNet-18+2.5D", "ResNet-50+3D")
PUBLISHED = Path(__file__).with_name("published_results.json")


def run_config(dataset: str, model: str, seed: int, variant: str) -> ml_collections.ConfigDict:
    """The dataset's config with `model=<model>` and `variant` applied, for `seed`."""
    if dataset not in CONFIG_MODULES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(CONFIG_MODULES)}")
    module = importlib.import_module(f"configs.{CONFIG_MODULES[dataset]}")
    config = module.get_config(",".join(filter(None, [f"model={model}", variant])))
    config.seed = seed
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
    """Sets each `field.path` of `overrides` in `config`; ValueError naming the field
    when the config lacks it or the value has the wrong type."""
    for path, value in overrides.items():
        *parents, name = path.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            raise ValueError(f"config override {path}={value!r}: the config has no field {path!r}")
        try:
            node[name] = value
        except TypeError as err:
            raise ValueError(f"config override {path}={value!r}: {err}") from None


def parse_value(text: str) -> Any:
    """A flag's value as a Python literal (`80`, `1e-3`, `True`, `'x'`), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False}.get(text.lower(), text)


def split_config_args(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """`--config.<path>=<value>` arguments out of `argv`: (the rest, {path: value})."""
    rest, overrides = [], {}
    for arg in argv:
        if arg.startswith("--config."):
            path, sep, value = arg.removeprefix("--config.").partition("=")
            if not sep or not path:
                raise ValueError(f"bad flag {arg!r}: expected --config.<field.path>=<value>")
            overrides[path] = parse_value(value)
        else:
            rest.append(arg)
    return rest, overrides


def run_name(dataset: str, model: str, seed: int, folds: int = 0, fold: int = 0) -> str:
    """`<dataset>-<model>-seed<k>`, or `<dataset>-<model>-cv<K>-fold<f>-seed<k>`."""
    cv = f"-cv{folds}-fold{fold}" if folds else ""
    return f"{dataset}-{model}{cv}-seed{seed}"


def run_one(config: ml_collections.ConfigDict, workdir: Path) -> dict:
    """Trains (or resumes) one run; a finished run's `results.json` is read back (after
    checking that the run was trained with `config`)."""
    run = Workdir(workdir)
    if run.results_path.exists():
        run.check_config(config)
        return run.read_results()
    return train.train_and_evaluate(config, workdir)


def training_time(workdir: Path) -> dict[str, float] | None:
    """From `metrics.jsonl`: the epochs' seconds summed (the first epoch includes
    compilation; final evaluation excluded) and their median, over an ensemble's
    members too; None without epochs."""
    runs = Workdir(workdir).members() or [Workdir(workdir)]
    seconds = [row["seconds"] for run in runs for row in run.read_metrics()]
    if not seconds:
        return None
    return {"seconds": float(np.sum(seconds)), "epoch_seconds_median": float(np.median(seconds))}


def summarise(results: list[dict], folds: int = 0) -> dict[str, Any]:
    """Mean and std over runs (seeds, and folds with `folds`) of the reported split's
    ACC and AUC; the split is `test` where every run has one, else `val`. With each
    run's `time` (`training_time`), also seconds per run and per epoch."""
    split = "test" if all(r["test"] is not None for r in results) else "val"
    out: dict[str, Any] = {"split": split, "runs": len(results), "folds": folds}
    times = [r.get("time") for r in results]
    if all(times):
        per_run = [t["seconds"] for t in times]
        out["seconds_per_run"] = {"mean": float(np.mean(per_run)), "values": per_run}
        out["epoch_seconds_median"] = float(np.median([t["epoch_seconds_median"] for t in times]))
    for metric in ("acc", "auc"):
        values = np.asarray([r[split][metric] for r in results], dtype=float)
        out[metric] = {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "values": values.tolist(),
        }
    return out


def _split_mark(row: dict) -> str:
    if row.get("folds"):
        return f" ({row['folds']}-fold CV)"
    return " (val)" if row["split"] == "val" else ""


def table_markdown(table: dict[str, dict[str, dict]], published: dict) -> str:
    """Rows: our models, then the published rows; columns: datasets (ACC / AUC)."""
    datasets = sorted({d for rows in table.values() for d in rows})
    head = "| model | " + " | ".join(datasets) + " |"
    lines = [head, "|" + "---|" * (len(datasets) + 1)]
    for model, rows in table.items():
        cells = []
        for d in datasets:
            r = rows.get(d)
            cells.append(
                ""
                if r is None
                else (
                    f"{r['acc']['mean']:.3f}±{r['acc']['std']:.3f} / "
                    f"{r['auc']['mean']:.3f}±{r['auc']['std']:.3f}"
                    f"{_split_mark(r)}"
                )
            )
        lines.append(f"| {model} (ours) | " + " | ".join(cells) + " |")
    for name in PUBLISHED_ROWS:
        rows = published["results"].get(name, {})
        cells = [
            f"{rows[d]['acc']:.3f} / {rows[d]['auc']:.3f}" if d in rows else "—" for d in datasets
        ]
        lines.append(f"| {name} (published) | " + " | ".join(cells) + " |")
    times = [
        f"| {model} | {d} | {r['runs']} | {r['seconds_per_run']['mean']:.0f} "
        f"({min(r['seconds_per_run']['values']):.0f}-{max(r['seconds_per_run']['values']):.0f})"
        f" | {r['epoch_seconds_median']:.1f} |"
        for model, rows in table.items()
        for d, r in sorted(rows.items())
        if "seconds_per_run" in r
    ]
    if times:
        lines += [
            "",
            "| model | dataset | runs | seconds per run, mean (min-max) | median s per epoch |",
            "|---|---|---|---|---|",
            *times,
        ]
    notes = [
        "",
        "Seconds per run: the epochs' seconds summed (the first includes compilation).",
        "Cells: ACC / AUC, mean ± std over seeds of the test split ((val): the dataset",
        "file has no test split, validation is reported; (K-fold CV): over folds and seeds",
        "of the held-out fold of train+val, test not read). Models selected on validation.",
        "Published rows: " + "; ".join(f"{k}: {v}" for k, v in published["sources"].items()),
    ]
    return "\n".join(lines + notes) + "\n"


def reproduce(
    datasets: list[str],
    models: list[str],
    seeds: int,
    variant: str,
    out: Path,
    folds: int = 0,
    overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
) -> dict:
    """Runs every (dataset, model, seed[, fold]) and writes `table.md` / `table.json`.
    `overrides` ({field path: value}) and `data_root` apply to every run."""
    table: dict[str, dict[str, dict]] = {m: {} for m in models}
    for dataset in datasets:
        for model in models:
            results = []
            for fold, seed in itertools.product(range(max(folds, 1)), range(seeds)):
                config = run_config(dataset, model, seed, variant)
                apply_overrides(config, overrides or {})
                if data_root:
                    config.data.root = data_root
                config.data.folds, config.data.fold = folds, fold
                workdir = out / "runs" / run_name(dataset, model, seed, folds, fold)
                print(f"== {workdir.name}: {workdir}", flush=True)
                results.append({**run_one(config, workdir), "time": training_time(workdir)})
            table[model][dataset] = summarise(results, folds)
    published = json.loads(PUBLISHED.read_text())
    evaluate.write_json(
        out / "table.json", {"variant": variant, "overrides": overrides or {}, "ours": table}
    )
    evaluate.atomic_write_text(out / "table.md", table_markdown(table, published))
    return table


def define_flags() -> None:
    """The command's flags (defined on use: `sweep` defines some of the same names)."""
    flags.DEFINE_list("datasets", ["synthetic3d"], "Dataset flags.")
    flags.DEFINE_list("models", ["lmttm", "ttm"], "Models: lmttm, ttm, resnet18_3d.")
    flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 per (dataset, model).")
    flags.DEFINE_string("variant", "", "Config variant applied to every run, e.g. scale=cpu.")
    flags.DEFINE_string("out", "results", "Output folder.")
    flags.DEFINE_integer(
        "folds", 0, "K >= 2: K-fold cross-validation on train+val instead of the file's split."
    )
    flags.DEFINE_string("data_root", None, "Folder of the dataset files (default: each config's).")


# Errors that are the user's to fix: one line, no traceback.
USER_ERRORS = (config_check.ConfigError, DatasetError, WorkdirError, FileNotFoundError, ValueError)
OVERRIDES: dict[str, Any] = {}


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, after taking out the `--config.<path>=<value>` overrides."""
    try:
        rest, overrides = split_config_args(argv[1:])
    except ValueError as err:
        cli.fail(str(err), cli.EXIT_ERROR)
    OVERRIDES.update(overrides)
    return app.parse_flags_with_usage(argv[:1] + rest)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    logging.set_verbosity(logging.WARNING)
    out = Path(FLAGS.out)
    cli.interrupt_on_sigterm()
    try:
        reproduce(
            FLAGS.datasets,
            FLAGS.models,
            FLAGS.seeds,
            FLAGS.variant,
            out,
            FLAGS.folds,
            OVERRIDES,
            FLAGS.data_root,
        )
    except USER_ERRORS as err:
        cli.fail(str(err), cli.EXIT_ERROR)
    except KeyboardInterrupt:
        cli.fail(cli.RUNS_INTERRUPTED, cli.EXIT_INTERRUPTED)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    define_flags()
    app.run(main, flags_parser=parse_flags)
