"""The results table: every (dataset, model, seed) trained under one protocol.

  python -m lmttm_jax.reproduce --datasets=adrenalmnist3d,synthetic3d \
      --models=lmttm,ttm --seeds=3 [--variant=scale=cpu] [--folds=5] [--out=results]

Each run is `main.py`'s training in `<out>/runs/`; the table is `<out>/table.md` and
`table.json` (`experiments.protocol`). `--config.<path>=<value>` overrides a config
field for every run (e.g. `--config.train.epochs=80`). A finished run is read back, an
interrupted one resumes. `--jobs=N` trains N at a time, `--worker=i --workers=n` share
the runs, `--list` shows them, `--collect` writes the table (`experiments.jobs`).
"""

import functools
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from lmttm_jax import errors, huge_pages
from lmttm_jax.experiments import jobs, protocol

FLAGS = flags.FLAGS


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
    jobs.define_flags()


OVERRIDES: dict[str, Any] = {}


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, after taking out the `--config.<path>=<value>` overrides."""
    try:
        rest, overrides = protocol.split_config_args(argv[1:])
    except ValueError as err:
        errors.fail(str(err), errors.EXIT_USAGE)
    OVERRIDES.update(overrides)
    return app.parse_flags_with_usage(argv[:1] + rest)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    out = Path(FLAGS.out)
    with errors.reported(interrupted=lambda err: errors.RUNS_INTERRUPTED):
        worker, workers = jobs.worker_index(FLAGS.worker, FLAGS.workers)
        runs = protocol.protocol_runs(
            FLAGS.datasets, FLAGS.models, FLAGS.seeds, FLAGS.variant, out,
            FLAGS.folds, OVERRIDES, FLAGS.data_root,
        )  # fmt: skip
        header = {"variant": FLAGS.variant, "overrides": OVERRIDES, "folds": FLAGS.folds}
        table = functools.partial(protocol.write_table, runs, out=out, header=header)
        if FLAGS.list:
            print(jobs.listing(runs, workers, lambda r: protocol.overrides_text(r, OVERRIDES)))
            return
        if FLAGS.collect:
            jobs.collect(runs, out, table)
        else:
            jobs.run(runs, out, table, worker, workers, FLAGS.jobs)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    define_flags()
    app.run(main, flags_parser=parse_flags)
