"""A search over config overrides, scored by K-fold cross-validation on train+val.

  python -m lmttm_jax.sweep --config=configs/adrenal.py:scale=tiny \
      --grid=configs/grids/adrenal_recipe.py --folds=5 --workdir=runs/sweep-adrenal

Every (point of the grid, fold) is one training run in `<workdir>/<point>/fold<f>`;
`table.md` and `table.json` in the workdir rank the points by mean held-out AUC
(`experiments.search`). A finished run is read back and an interrupted one resumes,
so the same command continues a search. `--jobs=N` trains N at a time, `--worker=i
--workers=n` share the runs, `--list` shows them, `--collect` writes the table
(`experiments.jobs`).
"""

import functools
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import config as config_lib
from lmttm_jax import errors, huge_pages
from lmttm_jax.experiments import jobs, search

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags (defined on use: `reproduce` defines some of the same names)."""
    config_flags.DEFINE_config_file(
        "config", None, "Base config, e.g. configs/adrenal.py:scale=tiny."
    )
    flags.DEFINE_string("grid", None, "Grid file: Python with POINTS, a list of override dicts.")
    flags.DEFINE_integer("folds", 5, "K-fold cross-validation on train+val (K >= 2).")
    flags.DEFINE_string("workdir", None, "Folder of the search's runs and table.")
    flags.DEFINE_string("data_root", None, "Dataset folder (overrides config.data.root).")
    jobs.define_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("config", "grid", "workdir"):
        if getattr(FLAGS, name) is None:
            raise app.UsageError(f"--{name} is required")
    logging.set_verbosity(logging.WARNING)
    config, workdir = FLAGS.config, Path(FLAGS.workdir)
    if FLAGS.data_root:
        config.data.root = FLAGS.data_root
    with errors.reported(interrupted=lambda err: errors.RUNS_INTERRUPTED):
        worker, workers = jobs.worker_index(FLAGS.worker, FLAGS.workers)
        config = config_lib.validate_config(config)
        points = search.load_grid(FLAGS.grid)  # a bad grid is one line, before any training
        runs = search.search_runs(config, points, FLAGS.folds, workdir)
        name = FLAGS["config"].config_filename
        table = functools.partial(
            search.write_table, runs, points, config_name=name, workdir=workdir
        )
        if FLAGS.list:
            print(jobs.listing(runs, workers, lambda r: r.name.rsplit("/", 1)[0]))
            return
        if FLAGS.collect:
            jobs.collect(runs, workdir, table)
        else:
            jobs.run(runs, workdir, table, worker, workers, FLAGS.jobs)
    print((workdir / "table.md").read_text())


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    define_flags()
    app.run(main)
