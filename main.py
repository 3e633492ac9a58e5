"""Train, evaluate, predict with and explain LMTTM / TTM on MedMNIST 3D or the synthetic set.

python main.py --config=configs/organ.py --workdir=runs/organ
python main.py --config=configs/organ.py --workdir=runs/organ --mode=eval --split=test
python main.py --mode=predict --workdir=runs/organ --input=scans/ --output=predictions.csv
python main.py --mode=explain --workdir=runs/organ --input=scan.nii.gz --out=explain.png
python main.py --mode=plot --workdir=runs/organ

Modes predict, explain and plot read the run's config from `<workdir>/config.json`.
"""

import re
import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import config_check, parallel, train
from lmttm_jax.data import DatasetError

FLAGS = flags.FLAGS
RUN_MODES = ("train", "eval")  # need --config
WORKDIR_MODES = ("predict", "explain", "plot")  # read <workdir>/config.json
config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/organ.py[:variant] (modes train and eval)."
)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and results.")
flags.DEFINE_enum(
    "mode",
    "train",
    list(RUN_MODES + WORKDIR_MODES),
    "train (and resume), eval (re-evaluate), predict (own volumes), explain (figures of "
    "one volume), plot (training curves).",
)
flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode=eval.")
flags.DEFINE_string("input", None, "predict/explain: a .npy/.npz/.nii/.nii.gz file or a folder.")
flags.DEFINE_string("output", None, "predict: a .csv or .json file (default: CSV on stdout).")
flags.DEFINE_string("out", None, "explain: the PNG to write (default <workdir>/explain.png).")
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-process: index of this process.")
flags.DEFINE_integer(
    "host_devices",
    0,
    "CPU only: split the host into this many JAX devices with one thread each (data "
    "parallelism over the cores; compare with `python -m lmttm_jax.bench "
    "--host_devices=0,N`). 0: one device using every core.",
)

# Errors that are the user's to fix: one line, no traceback.
USER_ERRORS = (config_check.ConfigError, DatasetError, FileNotFoundError, FloatingPointError)


def run_mode(mode: str) -> int:
    """Runs `mode`; returns the exit code."""
    if mode in RUN_MODES:
        if FLAGS.config is None:
            raise app.UsageError(f"--config is required for --mode={mode}")
        config = FLAGS.config
        workdir = FLAGS.workdir or f"runs/{config.data.name}-{config.model.name}-seed{config.seed}"
        if mode == "train":
            train.train_and_evaluate(config, workdir)
        else:
            train.evaluate_workdir(config, workdir, FLAGS.split)
        return 0
    if FLAGS.workdir is None:
        raise app.UsageError(f"--workdir is required for --mode={mode}")
    if FLAGS.config is not None:
        print(f"note: --mode={mode} uses {Path(FLAGS.workdir) / 'config.json'}; --config ignored")
    if mode == "plot":
        from lmttm_jax import plots

        print(f"wrote {plots.plot_workdir_curves(FLAGS.workdir)}")
        return 0
    if FLAGS.input is None:
        raise app.UsageError(f"--input is required for --mode={mode}")
    if mode == "predict":
        from lmttm_jax import predict

        return 0 if predict.predict_command(FLAGS.workdir, FLAGS.input, FLAGS.output) else 1
    from lmttm_jax import explain

    out = FLAGS.out or str(Path(FLAGS.workdir) / "explain.png")
    for path in explain.explain_command(FLAGS.workdir, FLAGS.input, out):
        print(f"wrote {path}")
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing; an override of a field the config lacks (ml_collections
    raises AttributeError or KeyError) is reported in one line naming the flag."""
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError) as err:
        key = re.search(r"\w+", str(err))  # the message starts with the quoted field name
        key = key.group(0) if key else "?"
        named = [a for a in argv[1:] if re.match(rf"--config\.(\w+\.)*{key}[.=]", a + "=")]
        hint = re.search(r'Did you mean "(\w+)"', str(err))
        hint = f' (did you mean "{hint.group(1)}"?)' if hint else ""
        flag = named[0] if named else "a --config.* override"
        print(f"error: {flag}: the config has no field {key!r}{hint}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    parallel.use_host_devices(FLAGS.host_devices)
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    try:
        code = run_mode(FLAGS.mode)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
