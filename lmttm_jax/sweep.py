"""A search over config overrides, scored by K-fold cross-validation on train+val.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=sweeps/adrenal.py --folds=5 --workdir=DIR [--data_root=...] [--seed=0]

The grid file is plain Python defining `POINTS`, a list of points, each a dict of
config overrides (field path -> value), e.g. `{"train.learning_rate": 3e-3}`; `{}`
is the config as given. Every (point, fold) is one `train.train_and_evaluate` run in
`DIR/runs/<point>/fold<f>`, on fold f of the pooled train+val (`config.data.folds`):
the test split is never read. Points run in the grid's order, all folds of a point
before the next. A finished run's `results.json` is read back, an interrupted run
resumes from its checkpoint, so the same command continues a stopped search.

After every run, `DIR/table.md` and `DIR/table.json` rank the points by mean held-out
AUC over folds (± std over folds), with mean ACC ± std and minutes per run; a point
with unfinished folds is listed with the folds it has. `--config.FIELD=VALUE`
overrides apply to every point (`--data_root=DIR` sets `config.data.root`).
"""

import re
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import config_check, evaluate, reproduce
from lmttm_jax.data import DatasetError

Point = dict[str, Any]


def load_grid(path: Path) -> list[Point]:
    """The `POINTS` of a grid file: a list of dicts {field path: value}."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--grid={path}: no such file")
    points = runpy.run_path(str(path)).get("POINTS")
    if not isinstance(points, list) or not all(
        isinstance(p, dict) and all(isinstance(k, str) for k in p) for p in points
    ):
        raise ValueError(f"{path}: expected POINTS = a list of dicts {{'train.epochs': 80}}")
    return points


def point_name(point: Mapping[str, Any]) -> str:
    """`{"train.epochs": 80, "model.dropout": 0.1}` -> "train.epochs=80,model.dropout=0.1";
    `{}` -> "baseline"."""
    return ",".join(f"{k}={v}" for k, v in point.items()) or "baseline"


def point_dir(point: Mapping[str, Any]) -> str:
    """The point's folder name: its name with characters other than [\\w.=,+-] as `_`."""
    return re.sub(r"[^\w.=,+-]", "_", point_name(point))


def fold_config(
    base: ml_collections.ConfigDict, point: Mapping[str, Any], folds: int, fold: int
) -> ml_collections.ConfigDict:
    """A copy of `base` with `point`'s overrides, on fold `fold` of `folds`, checked."""
    config = reproduce.apply_overrides(base.copy_and_resolve_references(), point)
    config.data.folds, config.data.fold = folds, fold
    return config_check.validate_config(config)


def summarise_point(point: Mapping[str, Any], results: list[dict], folds: int) -> dict:
    """Mean ± std over the point's finished folds of held-out ACC/AUC, minutes per run."""
    row: dict[str, Any] = {"point": point_name(point), "overrides": dict(point)}
    row["folds_done"], row["folds"] = len(results), folds
    for metric in ("auc", "acc"):
        values = np.asarray([r["val"][metric] for r in results], dtype=float)
        row[metric] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std()) if len(values) else None,
            "values": values.tolist(),
        }
    minutes = [r["time"]["seconds"] / 60 for r in results if r.get("time")]
    row["minutes_per_run"] = float(np.mean(minutes)) if minutes else None
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Best mean AUC first (then mean ACC); points without a finished fold last."""
    return sorted(
        rows,
        key=lambda r: (
            r["auc"]["mean"] is None,
            -(r["auc"]["mean"] or 0),
            -(r["acc"]["mean"] or 0),
        ),
    )


def _cell(stat: dict) -> str:
    return "—" if stat["mean"] is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def table_markdown(rows: list[dict], config_arg: str, seed: int) -> str:
    """The ranked table as markdown."""
    lines = [
        f"Config: `{config_arg}`, seed {seed}; held-out fold of train+val (test not read).",
        "",
        "| rank | point | CV AUC (mean ± std) | CV ACC (mean ± std) | folds | min per run |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        minutes = "—" if r["minutes_per_run"] is None else f"{r['minutes_per_run']:.1f}"
        lines.append(
            f"| {i} | `{r['point']}` | {_cell(r['auc'])} | {_cell(r['acc'])} | "
            f"{r['folds_done']}/{r['folds']} | {minutes} |"
        )
    lines += ["", "Minutes per run: the epochs' seconds summed (the first includes compilation)."]
    return "\n".join(lines) + "\n"


def sweep(
    base: ml_collections.ConfigDict,
    points: list[Point],
    folds: int,
    workdir: Path,
    config_arg: str = "",
) -> list[dict]:
    """Trains (or reads back) every (point, fold); returns the ranked rows and writes
    `workdir/table.md` and `table.json` after each run. Every point's config is
    checked, and the dataset file found, before the first run trains."""
    if folds < 2:
        raise ValueError(f"--folds={folds}: the search needs K >= 2 folds of train+val")
    workdir = Path(workdir)
    names = [point_dir(p) for p in points]
    if len(set(names)) != len(names):
        raise ValueError(
            f"the grid repeats a point: {sorted(n for n in names if names.count(n) > 1)}"
        )
    plans = [[fold_config(base, p, folds, f) for f in range(folds)] for p in points]
    reproduce.check_dataset(plans[0][0])
    results: list[list[dict]] = [[] for _ in points]

    def write_table() -> list[dict]:
        rows = rank([summarise_point(p, r, folds) for p, r in zip(points, results, strict=True)])
        meta = {"config": config_arg, "seed": base.seed, "folds": folds}
        evaluate.write_json(workdir / "table.json", {**meta, "points": rows})
        evaluate.atomic_write_text(
            workdir / "table.md", table_markdown(rows, config_arg, base.seed)
        )
        return rows

    for i, (point, configs) in enumerate(zip(points, plans, strict=True)):
        for fold, config in enumerate(configs):
            run_dir = workdir / "runs" / names[i] / f"fold{fold}"
            print(f"== point {i + 1}/{len(points)} {point_name(point)}, fold {fold}: {run_dir}")
            sys.stdout.flush()
            result = reproduce.run_one(config, run_dir)
            results[i].append({**result, "time": reproduce.training_time(run_dir)})
            write_table()
    return write_table()


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command line's flags (defined by `python -m`, not on import)."""
    config_flags.DEFINE_config_file("config", None, "Base config file[:variant].", lock_config=True)
    flags.DEFINE_string(
        "grid", None, "Grid file: Python defining POINTS, a list of override dicts."
    )
    flags.DEFINE_integer("folds", 5, "K-fold cross-validation on train+val (K >= 2).")
    flags.DEFINE_string("workdir", None, "Folder of the search's runs and table.")
    flags.DEFINE_string(
        "data_root", None, "Folder of the dataset files (default: config.data.root)."
    )
    flags.DEFINE_integer("seed", None, "Seed of every run (default: the config's).")


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    for name in ("config", "grid", "workdir"):
        if getattr(FLAGS, name) is None:
            sys.exit(f"sweep: --{name} is required")
    base = FLAGS.config
    if FLAGS.data_root:
        base.data.root = str(Path(FLAGS.data_root).expanduser())
    if FLAGS.seed is not None:
        base.seed = FLAGS.seed
    config_arg = config_flags.get_config_filename(FLAGS["config"])
    try:
        points = load_grid(Path(FLAGS.grid))
        sweep(base, points, FLAGS.folds, Path(FLAGS.workdir), config_arg)
    except (ValueError, DatasetError) as err:
        sys.exit(f"sweep: {err}")
    print((Path(FLAGS.workdir) / "table.md").read_text())


if __name__ == "__main__":
    define_flags()
    app.run(main)
