"""A search over config overrides, scored by K-fold cross-validation on train+val.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal.py --folds=5 --workdir=runs/sweep-adrenal

The grid file is plain Python with `POINTS`: a list of dicts, each mapping config
field paths to values (`{"train.learning_rate": 3e-3}`; `{}` is the config as it
is). Every (point, fold) is one training run in `<workdir>/<point>/fold<f>`, on the
pooled train+val minus stratified fold f (`config.data.folds`), validated on fold
f; the test split is never read. A finished run is read back and an interrupted one
resumes, so the same command continues a search. Points run in order, each
through all its folds; `--jobs=N` trains N runs at a time, each in a child process
on one core (`lmttm_jax.run_processes`: its output in the run's `train.log` and
here, prefixed with the run's name), in the same order (one thread rounds
differently from many: a run's numbers differ in their last bits). After each run, `table.md` and
`table.json` in the workdir rank the points by mean held-out AUC (std over folds),
with mean ACC and minutes per run (the epochs' seconds from `metrics.jsonl`).
"""

import importlib.util
import re
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import cli, evaluate, huge_pages, reproduce, run_processes

Point = dict[str, Any]


def load_grid(path: str | Path) -> list[Point]:
    """`POINTS` of the grid file at `path`, checked to be a list of dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--grid={path}: no such file")
    spec = importlib.util.spec_from_file_location(f"grid_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    points = getattr(module, "POINTS", None)
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ValueError(f"--grid={path}: expected POINTS, a list of dicts of overrides")
    return points


def point_name(point: Point) -> str:
    """`{"train.learning_rate": 0.003}` -> `train.learning_rate=0.003`; `{}` -> `base`."""
    if not point:
        return "base"
    name = ",".join(f"{k}={v}" for k, v in point.items())
    return re.sub(r"[^\w.,=+-]", "_", name)


def apply_point(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
    """A copy of `config` with the point's overrides; an unknown field is an error."""
    config = ml_collections.ConfigDict(config.to_dict())
    try:
        reproduce.apply_overrides(config, point)
    except ValueError as err:
        raise ValueError(f"grid point {point_name(point)}: {err}") from None
    return config


def point_row(name: str, point: Point, results: list[dict]) -> dict[str, Any]:
    """One table row: mean/std over the finished folds of held-out ACC/AUC."""
    row: dict[str, Any] = {"point": name, "overrides": point, "folds_done": len(results)}
    for metric in ("auc", "acc"):
        values = np.asarray([r["val"][metric] for r in results], dtype=float)
        row[metric] = {"mean": float(values.mean()), "std": float(values.std())}
        row[metric]["values"] = values.tolist()
    minutes = [r["time"]["seconds"] / 60 for r in results if r.get("time")]
    row["minutes_per_run"] = float(np.mean(minutes)) if minutes else None
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Highest mean AUC first, then mean ACC."""
    return sorted(rows, key=lambda r: (-r["auc"]["mean"], -r["acc"]["mean"]))


def table_markdown(rows: list[dict], folds: int, config_name: str) -> str:
    lines = [
        f"Search over `{config_name}`, {folds}-fold CV on train+val (test not read), "
        "ranked by mean held-out AUC.",
        "",
        "| rank | point | AUC mean ± std | ACC mean ± std | folds | min per run |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rank(rows), 1):
        minutes = "" if r["minutes_per_run"] is None else f"{r['minutes_per_run']:.1f}"
        lines.append(
            f"| {i} | `{r['point']}` | {r['auc']['mean']:.3f} ± {r['auc']['std']:.3f} | "
            f"{r['acc']['mean']:.3f} ± {r['acc']['std']:.3f} | "
            f"{r['folds_done']}/{folds} | {minutes} |"
        )
    return "\n".join(lines) + "\n"


def write_table(workdir: Path, rows: list[dict], folds: int, config_name: str) -> None:
    evaluate.write_json(workdir / "table.json", {"folds": folds, "rows": rank(rows)})
    evaluate.atomic_write_text(workdir / "table.md", table_markdown(rows, folds, config_name))


def sweep(
    config: ml_collections.ConfigDict,
    points: list[Point],
    folds: int,
    workdir: str | Path,
    config_name: str = "",
    jobs: int = 1,
) -> list[dict]:
    """Trains every (point, fold) not yet finished, `jobs` at a time (`run_processes`;
    with one job point by point, so that a point's CV score is complete before the
    next point starts); returns the table rows (ranked)."""
    if folds < 2:
        raise ValueError(f"--folds={folds}: cross-validation needs at least 2 folds")
    workdir = Path(workdir)
    named = {point_name(p): p for p in points}
    if len(named) != len(points):
        raise ValueError("the grid has two identical points")
    configs = {name: apply_point(config, p) for name, p in named.items()}  # errors up front
    runs = []
    for name, point_config in configs.items():
        for fold in range(folds):
            run_config = ml_collections.ConfigDict(point_config.to_dict())
            run_config.data.folds, run_config.data.fold = folds, fold
            run_dir = workdir / name / f"fold{fold}"
            runs.append(run_processes.Run(f"{name}/fold{fold}", run_config, run_dir))
    results: dict[str, dict[int, dict]] = {name: {} for name in named}

    def done(run: run_processes.Run, result: dict) -> None:
        name, fold = Path(run.workdir).parent.name, run.config.data.fold
        results[name][fold] = {**result, "time": reproduce.training_time(run.workdir)}
        write_table(workdir, table_rows(named, results), folds, config_name)

    def train_one(run_config: ml_collections.ConfigDict, run_dir: Path) -> dict:
        name, fold = run_dir.parent.name, run_config.data.fold
        print(f"== {name} fold {fold}: {run_dir}", flush=True)
        return reproduce.run_one(run_config, run_dir)

    run_processes.train_runs(runs, jobs, train_one, done)
    return rank(table_rows(named, results))


def table_rows(named: dict[str, Point], results: dict[str, dict[int, dict]]) -> list[dict]:
    """The rows of the points with a finished fold (folds in order)."""
    return [
        point_row(name, point, [results[name][f] for f in sorted(results[name])])
        for name, point in named.items()
        if results[name]
    ]


def define_flags() -> None:
    """The command's flags (defined on use: `reproduce` defines some of the same names)."""
    config_flags.DEFINE_config_file(
        "config", None, "Base config, e.g. configs/adrenal.py:scale=tiny."
    )
    flags.DEFINE_string("grid", None, "Grid file: Python with POINTS, a list of override dicts.")
    flags.DEFINE_integer("folds", 5, "K-fold cross-validation on train+val (K >= 2).")
    flags.DEFINE_string("workdir", None, "Folder of the search's runs and table.")
    flags.DEFINE_string("data_root", None, "Dataset folder (overrides config.data.root).")
    flags.DEFINE_integer(
        "jobs",
        1,
        "Runs trained at a time, each in a child process on one core (CPU: about one "
        "per core); 1 trains in this process.",
    )


def main(argv: list[str]) -> None:
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("config", "grid", "workdir"):
        if getattr(FLAGS, name) is None:
            raise app.UsageError(f"--{name} is required")
    logging.set_verbosity(logging.WARNING)
    config = FLAGS.config
    if FLAGS.data_root:
        config.data.root = FLAGS.data_root
    try:  # a bad grid is one line, before any training
        points = load_grid(FLAGS.grid)
        for point in points:
            apply_point(config, point)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    if FLAGS.jobs < 1:
        raise app.UsageError(f"--jobs={FLAGS.jobs}: expected an integer >= 1")
    cli.interrupt_on_sigterm()
    try:
        sweep(
            config, points, FLAGS.folds, FLAGS.workdir, FLAGS["config"].config_filename, FLAGS.jobs
        )
    except (run_processes.RunsFailed, *cli.USER_ERRORS) as err:  # runs in children / here
        cli.fail(cli.one_line(err), cli.EXIT_ERROR)
    except KeyboardInterrupt:
        cli.fail(cli.RUNS_INTERRUPTED, cli.EXIT_INTERRUPTED)
    print((Path(FLAGS.workdir) / "table.md").read_text())


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    define_flags()
    app.run(main)
