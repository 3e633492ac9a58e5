"""A search over config overrides, scored by K-fold cross-validation on train+val.

The grid file is plain Python with `POINTS`: a list of dicts, each mapping config
field paths to values (`{"train.learning_rate": 3e-3}`; `{}` is the config as it
is). Every (point, fold) is one run in `<workdir>/<point>/fold<f>`, validated on
stratified fold f of the pooled train+val; the test split is never read. The command
is `lmttm_jax.sweep`.
"""

import re
import runpy
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lmttm_jax import config as config_lib
from lmttm_jax.config import ConfigError
from lmttm_jax.experiments import jobs as jobs_lib
from lmttm_jax.experiments import protocol
from lmttm_jax.experiments.pool import Run
from lmttm_jax.workdir import atomic_write_text, write_json

Point = dict[str, Any]


def load_grid(path: str | Path) -> list[Point]:
    """`POINTS` of the grid file at `path`: a non-empty list of distinct dicts; any
    other grid is a `ConfigError` naming the file (and the line of a syntax error):
    its points are config overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--grid={path}: no such file")
    try:
        points = runpy.run_path(str(path)).get("POINTS")
    except SyntaxError as err:
        raise ConfigError(f"--grid={path} line {err.lineno}: {err.msg}") from None
    except Exception as err:  # the grid is the user's Python: any error of it is theirs
        raise ConfigError(f"--grid={path}: {type(err).__name__}: {err}") from None
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"--grid={path}: expected POINTS, a list of dicts of overrides")
    if not points:
        raise ConfigError(
            f"--grid={path}: POINTS is empty; add at least one point ({{}}: the config)"
        )
    names = [point_name(p) for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--grid={path}: points listed twice: {', '.join(twice)}")
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
        protocol.apply_overrides(config, point)
    except ValueError as err:
        raise ConfigError(f"grid point {point_name(point)}: {err}") from None
    return config


def point_row(name: str, point: Point, results: list[dict]) -> dict[str, Any]:
    """One table row: mean/std over the finished folds of held-out ACC/AUC."""
    row: dict[str, Any] = {"point": name, "overrides": point, "folds_done": len(results)}
    for metric in ("auc", "acc"):
        row[metric] = protocol.spread([r["val"][metric] for r in results])
    minutes = [r["time"]["seconds"] / 60 for r in results if r.get("time")]
    row["minutes_per_run"] = float(np.mean(minutes)) if minutes else None
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Highest mean AUC first, then mean ACC."""
    return sorted(rows, key=lambda r: (-r["auc"]["mean"], -r["acc"]["mean"]))


def table_markdown(rows: list[dict], folds: int, config_name: str) -> str:
    first = rows[0]["point"] if rows else ""
    lines = [
        f"Search over `{config_name}`, {folds}-fold CV on train+val (test not read), "
        f"ranked by mean held-out AUC. AUC - first: the paired difference from the grid's "
        f"first point ({first}) over the folds both finished, its 95 % t-interval and "
        "(wins/ties/losses).",
        "",
        "| rank | point | AUC mean ± std | ACC mean ± std | AUC - first | folds | min per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rank(rows), 1):
        minutes = "" if r["minutes_per_run"] is None else f"{r['minutes_per_run']:.1f}"
        versus = protocol.interval_text(r["vs_first"]["auc"]) if r.get("vs_first") else ""
        lines.append(
            f"| {i} | `{r['point']}` | {r['auc']['mean']:.3f} ± {r['auc']['std']:.3f} | "
            f"{r['acc']['mean']:.3f} ± {r['acc']['std']:.3f} | {versus} | "
            f"{r['folds_done']}/{folds} | {minutes} |"
        )
    return "\n".join(lines) + "\n"


def search_runs(
    config: ml_collections.ConfigDict, points: list[Point], folds: int, workdir: Path
) -> list[Run]:
    """Every (point, fold) as a run with its checked config, point by point."""
    if folds < 2:
        raise ConfigError(f"--folds={folds}: cross-validation needs at least 2 folds")
    runs = []
    for point in points:
        name, point_config = point_name(point), apply_point(config, point)
        for fold in range(folds):
            point_config.data.folds, point_config.data.fold = folds, fold
            checked = config_lib.validate_config(point_config)
            runs.append(Run(f"{name}/fold{fold}", checked, workdir / name / f"fold{fold}"))
    return runs


def write_table(
    runs: list[Run],
    points: list[Point],
    done: dict[str, dict],
    missing: list[str],
    workdir: Path,
    config_name: str,
) -> list[dict]:
    """`table.json` and `table.md` in `workdir` from the finished runs `done` of the
    grid's `points` (a table with `missing` runs is marked partial); the ranked rows."""
    folds = runs[0].config.data.folds
    rows, by_fold = [], {}
    for point in points:
        name = point_name(point)
        own = [r for r in runs if r.name.rsplit("/", 1)[0] == name and r.name in done]
        by_fold[name] = {r.config.data.fold: done[r.name]["val"] for r in own}
        finished = [{**done[r.name], "time": protocol.training_time(r.workdir)} for r in own]
        if finished:
            rows.append(point_row(name, point, finished))
    base = by_fold[point_name(points[0])]  # empty unless rows[0] is the first point's
    for row in rows[1:]:
        scores = by_fold[row["point"]]
        common = sorted(set(scores) & set(base))
        if common:
            row["vs_first"] = protocol.paired_metrics([(scores[f], base[f]) for f in common])
    table = {"folds": folds, "rows": rank(rows), "partial": bool(missing), "missing": missing}
    write_json(workdir / "table.json", table)
    text = table_markdown(rows, folds, config_name)
    if missing:
        text = f"Partial: {len(missing)} of {len(runs)} runs not finished.\n\n{text}"
    atomic_write_text(workdir / "table.md", text)
    return rank(rows)


def sweep(
    config: ml_collections.ConfigDict,
    points: list[Point],
    folds: int,
    workdir: str | Path,
    config_name: str = "",
    jobs: int = 1,
) -> list[dict]:
    """Trains every (point, fold) not yet finished (one worker, `jobs` at a time) and
    writes the table; returns its rows, ranked."""
    workdir = Path(workdir)
    runs = search_runs(config_lib.validate_config(config), points, folds, workdir)

    def table(done: dict[str, dict], missing: list[str]) -> list[dict]:
        return write_table(runs, points, done, missing, workdir, config_name)

    return jobs_lib.run(runs, workdir, table, 0, 1, jobs)
