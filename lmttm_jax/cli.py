"""The command line of `main.py` and of the installed `lmttm-jax`: one mode of one run
(train, eval, predict, explain, plot), its failures as one line each (`lmttm_jax.errors`).

Every mode but train reads the run's own `config.json`; predict and explain take a
model shipped in the package (`--pretrained=NAME`) instead of a run. The mode may come
first (`lmttm-jax train ...`) or as `--mode`; `--config` takes a config file
(`configs/organ.py:recipe=cpu`) or a dataset's name (`organ:recipe=cpu`, from
`lmttm_jax.recipes`). XLA's own log lines stay out of the terminal unless `--verbose`.

  lmttm-jax reproduce|sweep|compare|pretrained ...   the commands of those modules
"""

import os
import runpy
import sys
from pathlib import Path

if "--verbose" not in sys.argv:  # XLA reads it when it is first imported: before jax
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from lmttm_jax import (
    errors,
    explain,
    figures,
    huge_pages,
    inference,
    parallel,
    predict,
    recipes,
    train,
)
from lmttm_jax.config import validate_config
from lmttm_jax.errors import UsageError
from lmttm_jax.experiments import train_run

MODES = ("train", "eval", "predict", "explain", "plot")
COMMANDS = ("reproduce", "sweep", "compare", "pretrained")  # `lmttm-jax COMMAND ...`
FLAGS = flags.FLAGS


def define_flags() -> None:
    """The flags of `main.py` and `lmttm-jax`."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file or dataset name, e.g. configs/organ.py[:variant] or organ[:variant].",
        lock_config=True,
    )
    flags.DEFINE_string("workdir", None, "The run's directory: config, checkpoints, results.")
    flags.DEFINE_string(
        "pretrained", None, "predict/explain: a model shipped in the package (adrenalmnist3d)."
    )
    flags.DEFINE_enum("mode", "train", MODES, "train (and resume), eval, predict, explain, plot.")
    flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split for --mode=eval.")
    flags.DEFINE_string("input", None, "predict/explain: a .npy/.npz/.nii/.nii.gz file or folder.")
    flags.DEFINE_string("label", None, "explain: the volume's true class (name or index).")
    flags.DEFINE_string(
        "output",
        None,
        "The file to write: eval JSON, predict CSV/JSON (default stdout), explain or plot PNG "
        "(default: in --workdir).",
    )
    flags.DEFINE_bool("debug", False, "Show tracebacks of user errors too.")
    flags.DEFINE_bool("verbose", False, "Show XLA's own log lines too.")
    flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0.")
    flags.DEFINE_integer("num_processes", None, "Multi-process: number of processes.")
    flags.DEFINE_integer("process_id", None, "Multi-process: index of this process.")
    flags.DEFINE_integer(
        "host_devices",
        0,
        "CPU only: split the host into this many JAX devices (data parallelism over the "
        "cores; compare with `python -m benchmarks.bench --host_devices=0,N`). 0: one "
        "device using every core.",
    )


def command_line(argv: list[str]) -> list[str]:
    """`argv` with a leading mode as `--mode=MODE` and a dataset name in `--config`
    as the packaged config that has it (`recipes.py:NAME[,variant]`)."""
    argv = list(argv)
    if len(argv) > 1 and argv[1] in MODES:
        argv[1] = f"--mode={argv[1]}"
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            name, _, variant = arg.removeprefix("--config=").partition(":")
            if not Path(name).exists() and name in {*recipes.DATASETS, *recipes.FLAGS}:
                argv[i] = f"--config={recipes.__file__}:{','.join(filter(None, [name, variant]))}"
    return argv


def run(argv: list[str]) -> None:
    """Parses `argv` (see `command_line`) and runs its mode."""
    huge_pages.restart()  # before anything runs: glibc reads it at start
    define_flags()
    app.run(main, argv=command_line(argv), flags_parser=parse_flags)


def console() -> None:
    """The `lmttm-jax` command: a mode, or one of `COMMANDS`."""
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        runpy.run_module(f"lmttm_jax.{sys.argv.pop(1)}", run_name="__main__", alter_sys=True)
    else:
        run(sys.argv)


def _innermost(err: BaseException) -> BaseException:
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return err


def _joined(err: BaseException) -> str:
    """A message of several lines (ml_collections': a field, then a suggestion) as one."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, its failures in one line: a bad flag value or config
    variant (from the innermost exception, not the traceback text ml_collections puts
    in its message) and an override of a field the config lacks."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        cause = _innermost(err)
        if cause is err:
            errors.fail(errors.one_line(err), errors.EXIT_USAGE)
        flag = str(err).split(": ", 1)[0]  # absl's "flag --name=value"
        errors.fail(f"{flag}: {_joined(cause)}", errors.EXIT_USAGE)
    except (AttributeError, KeyError) as err:
        inner = err.args[0] if err.args and isinstance(err.args[0], KeyError) else err
        field = _joined(inner)  # ml_collections: the field and a "did you mean"
        errors.fail(f"a --config override names no field of the config: {field}", errors.EXIT_USAGE)


def config_from_flag() -> ml_collections.ConfigDict | None:
    """The parsed `--config`, checked, or None; a config file that cannot be loaded is
    a `UsageError` naming it."""
    flag = FLAGS["config"]
    if flag.value is None:
        return None
    path = flag.config_filename.split(":", 1)[0]
    if not Path(path).is_file():
        raise UsageError(f"--config={flag.config_filename}: no such file {path}")
    return validate_config(flag.value)


def train_command(config: ml_collections.ConfigDict | None, workdir: str | None) -> None:
    """`--mode=train`: trains the checked `config`, then draws the run's curves (not
    for a run that was finished before: its files stay as they are)."""
    if config is None:
        raise UsageError("--config is required for --mode=train")
    workdir = workdir or f"runs/{config.data.name}-{config.model.name}-seed{config.seed}"
    train.log(huge_pages.describe())
    finished = (Path(workdir) / "results.json").exists()
    train_run(config, workdir)
    if parallel.is_main_process() and not finished:
        for path in figures.plot_workdir(workdir):
            train.log(f"wrote {path}")


def model_source(mode: str, workdir: str | None, pretrained: str | None) -> Path:
    """The run directory, or the folder of the shipped model `pretrained`."""
    if pretrained is None:
        if workdir is None:
            raise UsageError(f"--workdir is required for --mode={mode}")
        return Path(workdir)
    if mode not in ("predict", "explain"):
        raise UsageError(f"--pretrained is for --mode=predict and --mode=explain, not {mode}")
    if workdir is not None:
        raise UsageError("give either --workdir (a run) or --pretrained (a shipped model)")
    try:
        return inference.shipped_dir(pretrained)
    except ValueError as err:
        raise UsageError(str(err)) from err


def run_mode(
    mode: str,
    config: ml_collections.ConfigDict | None,
    workdir: str | None,
    split: str,
    input_path: str | None,
    output: str | None,
    pretrained: str | None = None,
    label: str | None = None,
) -> int:
    """Runs `mode`; returns the exit code (`label`: explain's true class)."""
    if mode == "train":
        if output is not None:
            raise UsageError("--output is not used by --mode=train (see --workdir)")
        train_command(config, workdir)
        return 0
    source = model_source(mode, workdir, pretrained)
    if config is not None:
        print(f"note: --mode={mode} uses the run's own config.json; --config ignored")
    if mode == "eval":
        train.evaluate_workdir(source, split, output)
        return 0
    if mode == "plot":
        for path in figures.plot_workdir(source, output):
            print(f"wrote {path}")
        return 0
    if input_path is None:
        raise UsageError(f"--input is required for --mode={mode}")
    if mode == "explain" and output is None and pretrained is not None:
        raise UsageError("--output is required for --mode=explain --pretrained (e.g. explain.png)")
    restored = inference.restore(source)
    if mode == "predict":
        files = predict.list_inputs(input_path)
        return 0 if predict.write_predictions(restored, files, output) else errors.EXIT_ERROR
    board = None if pretrained else source
    out = output or source / "explain.png"
    for path in explain.explain_file(restored, input_path, out, board, label):
        print(f"wrote {path}")
    return 0


def main(argv: list[str]) -> None:
    """Runs `--mode` with the parsed `--config` and exits with its code."""
    if len(argv) > 1:
        errors.fail(f"unexpected arguments: {argv[1:]}", errors.EXIT_USAGE)
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    with errors.reported(FLAGS.debug):
        config = config_from_flag()
        try:
            parallel.use_host_devices(FLAGS.host_devices)
            parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
        except ValueError as err:
            raise UsageError(str(err)) from err
        code = run_mode(FLAGS.mode, config, FLAGS.workdir, FLAGS.split, FLAGS.input,
                        FLAGS.output, FLAGS.pretrained, FLAGS.label)  # fmt: skip
    raise SystemExit(code)


if __name__ == "__main__":
    console()
