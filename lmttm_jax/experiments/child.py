"""A child process of `pool.train_runs`: trains one run and exits.

  python -m lmttm_jax.experiments.child WORKDIR [CORE]   (the config as a JSON line on stdin)

With CORE, it first keeps itself to that CPU core. It trains with
`experiments.train_run` and exits as `main.py` does: 0, or 1 with `error: <one line>`,
or 130 when interrupted (by SIGINT from its parent, or when its stdin closes: no
training outlives the command that started it).
"""

import json
import os
import signal
import sys
import threading
from pathlib import Path

from lmttm_jax import errors
from lmttm_jax.config import validate_config
from lmttm_jax.experiments import train_run
from lmttm_jax.experiments.pool import EXIT_LOCKED
from lmttm_jax.workdir import RunLocked


def stop_when_parent_goes() -> None:
    """A thread that interrupts this process when its stdin closes (the parent ended)."""

    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def pin_to_core(core: int) -> None:
    """Keeps this process on one CPU core, before JAX starts: XLA sizes its thread pool
    by the cores a process may run on."""
    try:
        os.sched_setaffinity(0, {core})
        said = f"training on core {core}"
    except OSError as err:  # the core was taken away since the parent listed it
        said = f"training on the cores it was given: could not keep to core {core} ({err})"
    print(said, flush=True)


def main(argv: list[str]) -> None:
    """Trains the run of `argv[1]` with the config on stdin, on core `argv[2]` if given."""
    if len(argv) > 2:
        pin_to_core(int(argv[2]))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    with errors.reported():
        config = validate_config(json.loads(sys.stdin.readline()))
        stop_when_parent_goes()
        try:
            train_run(config, Path(argv[1]))
        except RunLocked as err:  # another worker took it first: not a failure
            print(f"skipped: {err}", flush=True)
            sys.exit(EXIT_LOCKED)


if __name__ == "__main__":
    main(sys.argv)
