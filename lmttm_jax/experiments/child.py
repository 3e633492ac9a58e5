"""A child process of `pool.train_runs`: trains one run and exits.

  python -m lmttm_jax.experiments.child WORKDIR [CORE]   (the config as a JSON line on stdin)

With CORE, it first keeps itself to that CPU core (`pin_to_core`). It trains with
`experiments.train_run` and exits as `main.py` does: 0, or 1 with `error: <one
line>`, or 130 when interrupted (Ctrl-C reaches it as SIGINT from its parent). Its
stdin stays open while the parent lives: when it closes, the child interrupts itself,
so no training outlives the command that started it.
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
    """Keeps this process on one CPU core, before JAX starts its CPU backend. XLA sizes
    its thread pool by the cores a process may run on, so this is what makes the
    process single-threaded: the `XLA_FLAGS` of `parallel.ONE_THREAD_PER_DEVICE` alone
    leave the library matmuls on every core."""
    try:
        os.sched_setaffinity(0, {core})
    except OSError as err:  # the core was taken away since the parent listed it
        print(
            f"training on the cores it was given: could not keep to core {core} ({err})", flush=True
        )
        return
    print(f"training on core {core}", flush=True)


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
