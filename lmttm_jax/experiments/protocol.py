"""The results table: every (dataset, model, seed) trained under one protocol.

Each run is `main.py`'s training in `<out>/runs/<dataset>-<model>[-cv<K>-fold<f>]-seed<k>`.
`<out>/table.md` and `table.json` give mean ± std over seeds (and folds) of the reported
split's ACC/AUC next to the published rows (`published_results.json`). The runs are
jobs that workers share (`experiments.jobs`); the command is `lmttm_jax.reproduce`.
"""

import ast
import itertools
import json
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lmttm_jax import config as config_lib
from lmttm_jax import recipes, stats
from lmttm_jax.experiments import jobs as jobs_lib
from lmttm_jax.experiments.pool import Run
from lmttm_jax.workdir import Workdir, atomic_write_text, write_json

PUBLISHED_ROWS = ("LMTTM", "TTM", "ResNet-18+3D", "ResNet-18+2.5D", "ResNet-50+3D")
PUBLISHED = Path(__file__).parents[1] / "published_results.json"


def run_config(dataset: str, model: str, seed: int, variant: str) -> ml_collections.ConfigDict:
    """The dataset's config with `model=<model>` and `variant` applied, for `seed`
    (`ConfigError` for an unknown dataset or variant)."""
    if dataset not in recipes.FLAGS or dataset == "folder":
        flags = tuple(f for f in recipes.FLAGS if f != "folder")
        raise config_lib.ConfigError(f"unknown dataset {dataset!r}; expected one of {flags}")
    choices = ",".join(filter(None, [f"model={model}", variant]))
    try:
        config = recipes.dataset_config(dataset, choices)
    except ValueError as err:
        raise config_lib.ConfigError(str(err)) from None
    config.seed = seed
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
    """Sets each `field.path` of `overrides` in `config`; `ConfigError` naming the
    field when the config lacks it or the value has the wrong type."""
    for path, value in overrides.items():
        *parents, name = path.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            raise config_lib.ConfigError(
                f"config override {path}={value!r}: the config has no field {path!r}"
            )
        try:
            node[name] = value
        except TypeError as err:
            raise config_lib.ConfigError(f"config override {path}={value!r}: {err}") from None


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


def overrides_text(run: Run, overrides: dict[str, Any]) -> str:
    """What a run sets besides its dataset's config: model, seed, fold, `overrides`."""
    c = run.config
    fields = {"model": c.model.name, "seed": c.seed}
    if c.data.folds:
        fields["fold"] = c.data.fold
    return " ".join(f"{k}={v}" for k, v in {**fields, **overrides}.items())


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
        out[metric] = spread([r[split][metric] for r in results])
    return out


def spread(values: list[float]) -> dict[str, Any]:
    """{"mean", "std", "values"} of `values`."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()), "values": values.tolist()}


def _cell(r: dict | None) -> str:
    """A table cell: `ACC mean±std / AUC mean±std`, marked (val) or (K-fold CV)."""
    if r is None:
        return ""
    mark = f" ({r['folds']}-fold CV)" if r.get("folds") else " (val)" if r["split"] == "val" else ""
    acc, auc = r["acc"], r["auc"]
    return f"{acc['mean']:.3f}±{acc['std']:.3f} / {auc['mean']:.3f}±{auc['std']:.3f}{mark}"


def table_markdown(table: dict[str, dict[str, dict]], published: dict) -> str:
    """Rows: our models, then the published rows; columns: datasets (ACC / AUC)."""
    datasets = sorted({d for rows in table.values() for d in rows})
    head = "| model | " + " | ".join(datasets) + " |"
    lines = [head, "|" + "---|" * (len(datasets) + 1)]
    for model, rows in table.items():
        cells = [_cell(rows.get(d)) for d in datasets]
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


def paired_table(runs: list[Run], done: dict[str, dict]) -> list[dict]:
    """For each dataset, the first model against each other one, on the runs both
    finished with the same seed and fold: the paired differences of the reported
    split's AUC and ACC (`stats.paired_differences`)."""
    scores: dict[tuple, dict] = {}
    for r in runs:
        if r.name in done:
            c = r.config
            scores[(c.data.name, c.model.name, c.seed, c.data.fold)] = done[r.name]
    models = list(dict.fromkeys(r.config.model.name for r in runs))
    out = []
    for dataset in dict.fromkeys(r.config.data.name for r in runs):
        for other in models[1:]:
            keys = [k for k in scores if k[:2] == (dataset, models[0])]
            pairs = [(scores[k], scores[(dataset, other, *k[2:])]) for k in keys
                     if (dataset, other, *k[2:]) in scores]  # fmt: skip
            if not pairs:
                continue
            split = "test" if all(a["test"] and b["test"] for a, b in pairs) else "val"
            row = {"dataset": dataset, "a": models[0], "b": other, "split": split}
            out.append({**row, **paired_metrics([(a[split], b[split]) for a, b in pairs])})
    return out


def paired_metrics(pairs: list[tuple[dict, dict]]) -> dict[str, dict]:
    """{"auc", "acc"}: `stats.paired_differences` over `pairs` of metrics (a, b)."""
    return {
        m: stats.paired_differences([a[m] for a, _ in pairs], [b[m] for _, b in pairs])
        for m in ("auc", "acc")
    }


def interval_text(d: dict) -> str:
    """A paired difference as `+0.012 [-0.004, +0.028] (3/0/2)`."""
    bounds = "" if d["n"] < 2 else f" [{d['low']:+.3f}, {d['high']:+.3f}]"
    return f"{d['mean']:+.3f}{bounds} ({d['wins']}/{d['ties']}/{d['losses']})"


def paired_markdown(paired: list[dict]) -> str:
    """The paired differences as a table (empty without pairs)."""
    if not paired:
        return ""
    lines = [
        "",
        "Paired differences A - B over the same seeds and folds: mean, 95 % t-interval, "
        "(wins/ties/losses of A).",
        "",
        "| dataset | A - B | split | AUC | ACC |",
        "|---|---|---|---|---|",
    ]
    for r in paired:
        lines.append(
            f"| {r['dataset']} | {r['a']} - {r['b']} | {r['split']} | {interval_text(r['auc'])} "
            f"| {interval_text(r['acc'])} |"
        )
    return "\n".join(lines) + "\n"


def protocol_runs(
    datasets: list[str],
    models: list[str],
    seeds: int,
    variant: str,
    out: Path,
    folds: int = 0,
    overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
) -> list[Run]:
    """Every (dataset, model, seed[, fold]) as a run with its checked config, in table
    order. `overrides` ({field path: value}) and `data_root` apply to every run."""
    runs = []
    for dataset, model in itertools.product(datasets, models):
        for fold, seed in itertools.product(range(max(folds, 1)), range(seeds)):
            config = run_config(dataset, model, seed, variant)
            apply_overrides(config, overrides or {})
            if data_root:
                config.data.root = data_root
            config.data.folds, config.data.fold = folds, fold
            cv = f"-cv{folds}-fold{fold}" if folds else ""
            name = f"{dataset}-{model}{cv}-seed{seed}"
            runs.append(Run(name, config_lib.validate_config(config), out / "runs" / name))
    return runs


def write_table(
    runs: list[Run], done: dict[str, dict], missing: list[str], out: Path, header: dict
) -> dict[str, dict[str, dict]]:
    """`table.json` and `table.md` in `out` from the finished runs `done` (`header`: the
    command's variant, overrides and folds); a table with `missing` runs is marked
    partial. Returns {model: {dataset: summary}}."""
    groups: dict[str, dict[str, list[dict]]] = {r.config.model.name: {} for r in runs}
    for r in runs:
        if r.name in done:
            group = groups[r.config.model.name].setdefault(r.config.data.name, [])
            group.append({**done[r.name], "time": training_time(r.workdir)})
    folds = header.get("folds", 0)
    table = {m: {d: summarise(rs, folds) for d, rs in g.items()} for m, g in groups.items()}
    paired = paired_table(runs, done)
    saved = {"ours": table, "paired": paired, "partial": bool(missing), "missing": missing}
    write_json(out / "table.json", {**header, **saved})
    text = table_markdown(table, json.loads(PUBLISHED.read_text())) + paired_markdown(paired)
    if missing:
        names = ", ".join(missing)
        text = f"Partial: {len(missing)} of {len(runs)} runs not finished ({names}).\n\n{text}"
    atomic_write_text(out / "table.md", text)
    return table


def reproduce(
    datasets: list[str],
    models: list[str],
    seeds: int,
    variant: str,
    out: Path,
    folds: int = 0,
    overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
    jobs: int = 1,
) -> dict[str, dict[str, dict]]:
    """Trains every run of the protocol (one worker, `jobs` at a time) and writes the
    table; returns it ({model: {dataset: summary}})."""
    runs = protocol_runs(datasets, models, seeds, variant, out, folds, overrides, data_root)
    header = {"variant": variant, "overrides": overrides or {}, "folds": folds}
    return jobs_lib.run(runs, out, lambda d, m: write_table(runs, d, m, out, header), 0, 1, jobs)
