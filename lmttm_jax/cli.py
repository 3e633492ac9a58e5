"""What `main.py` runs: one mode, and every failure a user can fix as one line.

A failure of the user's input or environment (config, data, run directory, volume
file, disk) prints `error: <one line>` on stderr and exits 1; Ctrl-C (or SIGTERM)
exits 130 with how to resume; a usage mistake exits 2. `--debug` shows the traceback
instead. Anything else is a bug and keeps its traceback.
"""

import signal
import sys
from pathlib import Path

import ml_collections
from absl import flags, logging

from lmttm_jax import config_check, parallel, run_processes
from lmttm_jax.data import DatasetError
from lmttm_jax.workdir import WorkdirError

MODES = ("train", "eval", "predict", "explain", "plot")
EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Ctrl-C or SIGTERM in a command that trains several runs (`reproduce`, `sweep`).
RUNS_INTERRUPTED = (
    "interrupted; run the same command to resume (finished runs are read back, "
    "interrupted ones resume from their last checkpoint)"
)


class UsageError(Exception):
    """A flag is missing or does not fit the mode."""


# The user's to fix (`DatasetError` includes an unusable volume file for predict/explain).
USER_ERRORS = (
    config_check.ConfigError,
    DatasetError,
    WorkdirError,
    FloatingPointError,
    OSError,
    run_processes.RunsFailed,
)


def one_line(err: BaseException) -> str:
    """An error for the user: an OS error as `<file>: <reason>`, others their message
    (one line; a report of several bad inputs has one line per input)."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def joined(err: BaseException) -> str:
    """A message of several lines (ml_collections': a field, then a suggestion) as one."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _innermost(err: BaseException) -> BaseException:
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return err


def interrupted_message(epoch: int | None) -> str:
    """Ctrl-C: where training stands (`epoch`: the last saved one) and what to do."""
    if epoch is None:
        return "interrupted; run the same command again"
    if epoch == 0:
        return "interrupted before epoch 1 was saved; run the same command to start again"
    return f"interrupted after epoch {epoch}; run the same command to resume"


def interrupt_on_sigterm() -> None:
    """SIGTERM (`kill`, a batch scheduler's stop) interrupts as Ctrl-C does: the epoch
    in progress is dropped, the last checkpoint kept, and the command says how to go on."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, its failures in one line: a bad flag value or config
    variant (from the innermost exception, not the traceback text ml_collections puts
    in its message) and an override of a field the config lacks."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        cause = _innermost(err)
        if cause is err:
            fail(one_line(err), EXIT_USAGE)
        flag = str(err).split(": ", 1)[0]  # absl's "flag --name=value"
        fail(f"{flag}: {joined(cause)}", EXIT_USAGE)
    except (AttributeError, KeyError) as err:
        inner = err.args[0] if err.args and isinstance(err.args[0], KeyError) else err
        field = joined(inner)  # ml_collections: the field and a "did you mean"
        fail(f"a --config override names no field of the config: {field}", EXIT_USAGE)


def config_from_flag(name: str = "config") -> ml_collections.ConfigDict | None:
    """The parsed `--config`, or None; a config file that cannot be loaded is a
    `UsageError` naming it."""
    if flags.FLAGS[name].value is None:
        return None
    path = flags.FLAGS[name].config_filename.split(":", 1)[0]
    if not Path(path).is_file():
        raise UsageError(f"--{name}={flags.FLAGS[name].config_filename}: no such file {path}")
    return flags.FLAGS[name].value


def run_mode(
    mode: str,
    config: ml_collections.ConfigDict | None,
    workdir: str | None,
    split: str,
    input_path: str | None,
    output: str | None,
    pretrained: str | None = None,
) -> int:
    """Runs `mode`; returns the exit code. `pretrained`: a shipped model's name
    (predict and explain only) instead of `workdir`."""
    from lmttm_jax import train

    if pretrained is not None:
        return run_pretrained(mode, config, workdir, pretrained, input_path, output)
    if mode == "train":
        if config is None:
            raise UsageError("--config is required for --mode=train")
        if output is not None:
            raise UsageError("--output is not used by --mode=train (see --workdir)")
        workdir = workdir or f"runs/{config.data.name}-{config.model.name}-seed{config.seed}"
        train.train_and_evaluate(config, workdir)
        return 0
    if workdir is None:
        raise UsageError(f"--workdir is required for --mode={mode}")
    if config is not None:
        print(f"note: --mode={mode} uses {Path(workdir) / 'config.json'}; --config ignored")
    if mode == "eval":
        train.evaluate_workdir(workdir, split, output)
        return 0
    if mode == "plot":
        from lmttm_jax import figures

        print(f"wrote {figures.plot_workdir_curves(workdir, output)}")
        return 0
    if input_path is None:
        raise UsageError(f"--input is required for --mode={mode}")
    if mode == "predict":
        from lmttm_jax import predict

        return 0 if predict.predict_command(workdir, input_path, output) else EXIT_ERROR
    from lmttm_jax import explain

    for path in explain.explain_command(workdir, input_path, output):
        print(f"wrote {path}")
    return 0


def run_pretrained(
    mode: str,
    config: ml_collections.ConfigDict | None,
    workdir: str | None,
    name: str,
    input_path: str | None,
    output: str | None,
) -> int:
    """`--mode=predict|explain --pretrained=name`; returns the exit code."""
    from lmttm_jax import pretrained

    if mode not in ("predict", "explain"):
        raise UsageError(f"--pretrained is for --mode=predict and --mode=explain, not {mode}")
    if workdir is not None:
        raise UsageError("give either --workdir (a run) or --pretrained (a shipped model)")
    try:
        pretrained.model_dir(name)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if input_path is None:
        raise UsageError(f"--input is required for --mode={mode}")
    if config is not None:
        print(f"note: --pretrained={name} uses its own config; --config ignored")
    if mode == "predict":
        return 0 if pretrained.predict_command(name, input_path, output) else EXIT_ERROR
    for path in pretrained.explain_command(name, input_path, output):
        print(f"wrote {path}")
    return 0


def main(
    mode: str,
    workdir: str | None,
    split: str,
    input_path: str | None,
    output: str | None,
    debug: bool,
    devices: tuple[int, str | None, int | None, int | None] = (0, None, None, None),
    pretrained: str | None = None,
) -> None:
    """Runs `mode` with the parsed `--config` and exits with its code. `devices`:
    `--host_devices`, then `--coordinator_address`, `--num_processes`, `--process_id`;
    `pretrained`: `--pretrained`."""
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    interrupt_on_sigterm()
    try:
        config = config_from_flag()
        try:
            parallel.use_host_devices(devices[0])
            parallel.initialize(*devices[1:])
        except ValueError as err:
            raise UsageError(str(err)) from err
        code = run_mode(mode, config, workdir, split, input_path, output, pretrained)
    except UsageError as err:
        if debug:
            raise
        fail(str(err), EXIT_USAGE)
    except KeyboardInterrupt as err:
        if debug:
            raise
        fail(interrupted_message(getattr(err, "epoch", None)), EXIT_INTERRUPTED)
    except USER_ERRORS as err:
        if debug:
            raise
        fail(one_line(err), EXIT_ERROR)
    sys.exit(code)
