"""The runs of one command as jobs that any number of workers share in one output folder.

`reproduce` and `sweep` each make the same list of runs every time (`pool.Run`). Worker
i of n (`--worker=i --workers=n`, or a SLURM job array's task) runs its share i, i+n,
i+2n, ... first, then every other run in order, so a fast worker helps a slow one. A
run whose lock a live worker holds is skipped; one left by a dead worker is taken over
and resumes from its checkpoint. The command's table is written from the finished runs
after each run, under a file lock: the same runs give the same table whatever number
of workers made them.
"""

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import flags

from lmttm_jax import train
from lmttm_jax.errors import UsageError
from lmttm_jax.experiments import pool, train_run

Table = Callable[[dict[str, dict], list[str]], Any]  # (finished results, missing names)


def define_flags() -> None:
    """The flags `reproduce` and `sweep` share."""
    flags.DEFINE_integer("worker", None, "This worker's index in [0, --workers).")
    flags.DEFINE_integer("workers", None, "Workers sharing the output folder (default 1).")
    flags.DEFINE_bool("list", False, "Print every run and the worker that takes it; train none.")
    flags.DEFINE_bool("collect", False, "Write the table from the finished runs; train none.")
    flags.DEFINE_integer(
        "jobs",
        1,
        "Runs trained at a time by this worker, each in a child process: on a CPU one "
        "core each (about one per core), on an accelerator each with 1/jobs of its "
        "memory; 1 trains in this process.",
    )


def worker_index(
    worker: int | None, workers: int | None, environ: Mapping[str, str] = os.environ
) -> tuple[int, int]:
    """(i, n) from the flags, else from a SLURM job array, else (0, 1); `UsageError`
    for an index out of range."""
    if worker is None and workers is None and "SLURM_ARRAY_TASK_ID" in environ:
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        worker = int(environ["SLURM_ARRAY_TASK_ID"]) - first
        workers = int(environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
    worker, workers = worker or 0, 1 if workers is None else workers
    if workers < 1:
        raise UsageError(f"--workers={workers}: expected a number of workers >= 1")
    if not 0 <= worker < workers:
        raise UsageError(f"--worker={worker}: expected an index in [0, {workers - 1}]")
    return worker, workers


def worker_order(runs: Sequence[pool.Run], worker: int, workers: int) -> list[pool.Run]:
    """Worker `worker`'s share of `runs` first, then the others, each in order."""
    mine = [r for i, r in enumerate(runs) if i % workers == worker]
    return mine + [r for i, r in enumerate(runs) if i % workers != worker]


def finished(runs: Sequence[pool.Run]) -> dict[str, dict]:
    """{name: results} of the finished runs (each checked against its config)."""
    results = {run.name: train.finished_results(run.config, run.workdir) for run in runs}
    return {name: r for name, r in results.items() if r is not None}


@contextlib.contextmanager
def table_lock(folder: Path) -> Iterator[None]:
    """Held while a worker reads the finished runs and writes the table, so that the
    last table written is the newest."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "table.lock", "a") as handle:
        with contextlib.suppress(OSError):  # a file system without locks: best effort
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def collect(runs: Sequence[pool.Run], folder: Path, table: Table, quiet: bool = False) -> Any:
    """Writes the table from the finished runs and returns what `table` returns; says
    what is missing unless `quiet`."""
    with table_lock(folder):
        done = finished(runs)
        missing = [r.name for r in runs if r.name not in done]
        written = table(done, missing)
    if missing and not quiet:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        shown = ", ".join(missing[:10]) + more
        print(f"{len(done)} of {len(runs)} runs finished; missing: {shown}", flush=True)
    return written


def run(
    runs: Sequence[pool.Run], folder: Path, table: Table, worker: int, workers: int, jobs: int
) -> Any:
    """Worker `worker` of `workers` trains what is left (its share first), rewriting
    the table after each run, then writes it once more; returns the last table."""

    def rewrite(_run: pool.Run, _results: dict) -> None:
        collect(runs, folder, table, quiet=True)

    pool.train_runs(worker_order(runs, worker, workers), jobs, train_run, rewrite)
    return collect(runs, folder, table)


def listing(runs: Sequence[pool.Run], workers: int, overrides: Callable[[pool.Run], str]) -> str:
    """One line per run: its index, name, the worker whose share it is, state, overrides."""
    done = set(finished(runs))
    lines = []
    for i, r in enumerate(runs):
        state = "finished" if r.name in done else "to train"
        lines.append(f"{i:4d}  {r.name}  worker {i % workers}  {state}  {overrides(r)}")
    return "\n".join(lines + [f"{len(runs)} runs, {len(done)} finished"])
