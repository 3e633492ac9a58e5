"""The failures a user can fix, and how every command reports them.

A failure of the user's input or environment (a config field, a dataset or volume
file, a run directory, the disk) is raised where it is found as one of `USER_ERRORS`,
with a one-line message; a command (`reported`) prints it as `error: <line>` and exits
1. A usage mistake (a missing or conflicting flag) exits 2; Ctrl-C or SIGTERM exits
130 saying how to go on. `--debug` shows the traceback instead. Anything else is a bug
and keeps its traceback.
"""

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from lmttm_jax import compilation
from lmttm_jax.config import ConfigError
from lmttm_jax.data import DatasetError
from lmttm_jax.workdir import WorkdirError

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
# Ctrl-C or SIGTERM in a command that trains several runs (`reproduce`, `sweep`).
RUNS_INTERRUPTED = (
    "interrupted; run the same command to resume (finished runs are read back, "
    "interrupted ones resume from their last checkpoint)"
)


class UsageError(Exception):
    """A flag is missing or does not fit the command."""


class RunsFailed(Exception):
    """Runs trained in child processes failed; the message names each and its log."""


USER_ERRORS = (ConfigError, DatasetError, WorkdirError, RunsFailed, FloatingPointError, OSError)


def one_line(err: BaseException) -> str:
    """An error for the user: an OS error as `<file>: <reason>`, others their message
    (a report of several bad inputs has one line per input)."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def fail(message: str, code: int) -> NoReturn:
    """Prints `error: <message>` and ends the process with `code` (at once when an
    interrupted compile still runs: XLA would finish it first)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    if compilation.abandoned():
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)


def interrupted_message(err: BaseException) -> str:
    """Ctrl-C during one training: where it stands (`err.epoch`, the last saved epoch,
    when the training knew it) and what to do."""
    epoch = getattr(err, "epoch", None)
    if epoch is None:
        return "interrupted; run the same command again"
    if epoch == 0:
        return "interrupted before epoch 1 was saved; run the same command to start again"
    return f"interrupted after epoch {epoch}; run the same command to resume"


@contextlib.contextmanager
def reported(
    debug: bool = False, interrupted: Callable[[BaseException], str] = interrupted_message
) -> Iterator[None]:
    """Runs a command's body: a user error, a usage error or an interrupt ends the
    process with its one line and exit code (`debug`: with the traceback instead).
    SIGTERM (`kill`, a batch scheduler's stop) interrupts as Ctrl-C does."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    except (UsageError, KeyboardInterrupt, *USER_ERRORS) as err:
        if debug:
            raise
        if isinstance(err, UsageError):
            fail(str(err), EXIT_USAGE)
        if isinstance(err, KeyboardInterrupt):
            fail(interrupted(err), EXIT_INTERRUPTED)
        fail(one_line(err), EXIT_ERROR)
