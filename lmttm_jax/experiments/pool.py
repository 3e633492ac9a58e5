"""Independent training runs side by side: one child process per run, one core each.

On a CPU, a small model's operations are too small to keep two cores busy: one
training on every core is far from twice as fast as one on a single core, so two
single-threaded trainings side by side train more per hour. `train_runs(runs, jobs,
train)` trains a list of `Run`s (name, config, workdir), at most `jobs` at a time:

- `jobs=1`: in this process, one after the other, with `train(config, workdir)`.
- `jobs>1`: each unfinished run in a child process (`python -m
  lmttm_jax.experiments.child WORKDIR CORE`, the config on its stdin: a fresh
  interpreter, never a fork of this multithreaded one) that trains it with
  `experiments.train_run` on one core: the child keeps itself to CORE (the
  children running at once get different cores of those this process may use, as
  long as there are enough), which sizes XLA's thread pool to one thread, and
  `parallel.ONE_THREAD_PER_DEVICE` is added to the `XLA_FLAGS` it inherits. The
  child's output (progress bars off: it is not a terminal) is appended to
  `<workdir>/train.log` and relayed here, each line prefixed with `[<name>]`. A
  finished run (`results.json`) is read back here after checking its config, never
  trained again. The children share the persistent compilation cache of their
  configs (`config.train.compile_cache`).

On an accelerator the children share it: each may take at most `MEMORY_SHARE / jobs`
of its memory (`XLA_PYTHON_CLIENT_MEM_FRACTION`, unless the user set it), so that
none can starve the others; a parent that computes too takes memory as it needs it
(`without_preallocation`).

A run whose lock another live process holds (a worker of the same command on a
shared folder, `experiments.jobs`) is skipped: `train_runs` leaves it out of its
results. A run that fails is reported in one line naming it and its log; the others
finish, then `errors.RunsFailed` names every failed run, in the order of the runs. Ctrl-C stops
every child (each saves nothing more and exits as an interrupted training does) and
raises `KeyboardInterrupt`: every run resumes from its last checkpoint when the same
command runs again. A child whose parent dies (its stdin closes) stops the same way.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import IO

import ml_collections

import lmttm_jax
from lmttm_jax import parallel, train
from lmttm_jax.errors import RunsFailed
from lmttm_jax.workdir import RunLocked, Workdir

CHILD = "lmttm_jax.experiments.child"  # the module a child runs
LOG_NAME = "train.log"
STOP_SECONDS = 60  # a child's time to stop after Ctrl-C before it is killed
POLL_SECONDS = 0.2
EXIT_LOCKED = 75  # a child's exit code when another process holds its run's lock
MEMORY_SHARE = 0.85  # of an accelerator's memory, split between the children


@dataclasses.dataclass(frozen=True)
class Run:
    """One training: `name` prefixes its log lines, `workdir` holds it."""

    name: str
    config: ml_collections.ConfigDict
    workdir: Path


Train = Callable[[ml_collections.ConfigDict, Path], dict]
Done = Callable[[Run, dict], None]


def train_runs(
    runs: Sequence[Run], jobs: int, train: Train, done: Done | None = None
) -> dict[str, dict]:
    """{run name: results} of every run not held by another process, trained `jobs`
    at a time (see the module docstring); `done(run, results)` is called here as each
    run finishes."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: expected an integer >= 1")
    done = done or (lambda run, results: None)
    if jobs > 1:
        return _Pool(jobs, done).train(runs)
    out = {}
    for run in runs:
        try:
            results = train_finished(run)
            out[run.name] = train(run.config, Path(run.workdir)) if results is None else results
        except RunLocked as err:
            print(f"[{run.name}] skipped: {err}", flush=True)
            continue
        done(run, out[run.name])
    return out


def train_finished(run: Run) -> dict | None:
    """A finished run's results, read back without taking its lock; None for a run to
    train; `RunLocked` for one that another live process trains."""
    results = train.finished_results(run.config, run.workdir)
    holder = Workdir(run.workdir).lock.live_holder() if results is None else None
    if holder is not None:
        raise RunLocked(f"{run.workdir} is in use by another training run (pid "
                        f"{holder.get('pid')} on host {holder.get('host')})")  # fmt: skip
    return results


def log_path(workdir: Path) -> Path:
    """Where a run trained in a child process keeps that child's output."""
    return Path(workdir) / LOG_NAME


def without_preallocation(env: MutableMapping[str, str]) -> None:
    """Unless the user set it, a process started with `env` takes accelerator memory
    as it needs it instead of most of the device up front: children share the device
    with each other and with their parent. XLA reads it when the process first opens
    the device, so the parent sets it in its own `os.environ` before that."""
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def child_environment(jobs: int) -> dict[str, str]:
    """This process's environment for a child: one XLA thread (the user's `XLA_FLAGS`
    kept), this copy of `lmttm_jax` importable, its share of an accelerator's memory
    unless the user chose one."""
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{MEMORY_SHARE / jobs:.3f}")
    flags = env.get("XLA_FLAGS", "")
    if parallel.ONE_THREAD_PER_DEVICE not in flags:
        env["XLA_FLAGS"] = f"{flags} {parallel.ONE_THREAD_PER_DEVICE}".strip()
    package_parent = str(Path(lmttm_jax.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def usable_cores() -> list[int]:
    """The CPU cores this process may run on, in order; empty where the operating
    system cannot pin a process to a core (children then run unpinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


@dataclasses.dataclass
class _Child:
    run: Run
    process: subprocess.Popen
    relay: threading.Thread
    slot: int  # which of the `jobs` places it holds: its core


class _Pool:
    """The children of `train_runs` with `jobs` > 1."""

    def __init__(self, jobs: int, done: Done):
        self.jobs, self.done = jobs, done
        self.env = child_environment(jobs)
        self.cores = usable_cores()
        self.free_slots = list(range(jobs))
        self.print_lock = threading.Lock()

    def say(self, line: str) -> None:
        with self.print_lock:
            print(line, flush=True)

    def train(self, runs: Sequence[Run]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        failed: dict[str, str] = {}  # run name -> message, in the order runs end
        pending: list[Run] = []
        for run in runs:  # finished runs first: read back, never started
            try:
                results = train_finished(run)
            except RunLocked as err:
                self.say(f"[{run.name}] skipped: {err}")
                continue
            if results is None:
                pending.append(run)
            else:
                out[run.name] = results
                self.done(run, results)
        running: list[_Child] = []
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    running.append(self.start(pending.pop(0)))
                time.sleep(POLL_SECONDS)
                for child in [c for c in running if c.process.poll() is not None]:
                    running.remove(child)
                    self.finish(child, out, failed)
        except BaseException:  # Ctrl-C, or an error here: no child is left behind
            self.stop(running)
            raise
        if failed:  # in the order of `runs`, whichever ended first
            raise RunsFailed("; ".join(failed[run.name] for run in runs if run.name in failed))
        return out

    def start(self, run: Run) -> _Child:
        workdir = Path(run.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        log = log_path(workdir)
        slot = self.free_slots.pop(0)
        command = [sys.executable, "-m", CHILD, str(workdir)]
        where = ""
        if self.cores:
            core = self.cores[slot % len(self.cores)]
            command.append(str(core))
            where = f" on core {core}"
        self.say(f"[{run.name}] training in a child process{where}; log: {log}")
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the children through `stop` only
        )
        process.stdin.write(run.config.to_json_best_effort() + "\n")
        process.stdin.flush()  # stdin stays open: the child stops when it closes
        relay = threading.Thread(target=self.relay, args=(run.name, process.stdout, log))
        relay.start()
        return _Child(run, process, relay, slot)

    def relay(self, name: str, stream: IO[str], log: Path) -> None:
        """Copies the child's output to its log file and here, prefixed with its name."""
        with open(log, "a") as f:
            for line in stream:
                f.write(line)
                f.flush()
                self.say(f"[{name}] {line.rstrip()}")

    def finish(self, child: _Child, out: dict, failed: dict[str, str]) -> None:
        child.relay.join()
        child.process.stdin.close()
        self.free_slots = sorted([*self.free_slots, child.slot])
        run, code = child.run, child.process.returncode
        if code == 0:
            out[run.name] = Workdir(run.workdir).read_results()
            self.done(run, out[run.name])
            return
        if code == EXIT_LOCKED:
            return  # another process took it first
        message = f"run {run.name} failed (exit {code}): {last_line(log_path(run.workdir))}"
        failed[run.name] = f"{message}; log: {log_path(run.workdir)}"
        self.say(f"[{run.name}] error: {failed[run.name]}")

    def stop(self, running: list[_Child]) -> None:
        """Every child is interrupted, given `STOP_SECONDS` to exit, then killed."""
        if running:
            self.say(f"stopping {len(running)} training(s)...")
        for child in running:
            child.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_SECONDS
        for child in running:
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            child.relay.join()
            child.process.stdin.close()


def last_line(path: Path) -> str:
    """The last non-empty line of a log (an error's message or its exception)."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return "(no output)"
    return lines[-1] if lines else "(no output)"
