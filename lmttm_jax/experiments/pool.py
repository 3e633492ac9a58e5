"""Independent training runs side by side: one child process per run, one core each.

On a CPU a small model's operations cannot keep many cores busy, so single-threaded
trainings side by side train more per hour than one on every core. A child
(`lmttm_jax.experiments.child`) is a fresh interpreter, never a fork of this
multithreaded one; its output is appended to `<workdir>/train.log` and relayed here,
each line prefixed with `[<name>]`. A failing run is reported in one line naming its
log; the others finish, then `errors.RunsFailed` names every failed run. Ctrl-C stops
every child (each exits as an interrupted training does) and raises
`KeyboardInterrupt`: the same command resumes every run from its last checkpoint.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
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
    """{run name: results} of every run not held by another process, at most `jobs` at
    a time: with `jobs=1` in this process with `train(config, workdir)`, else each
    unfinished run in a child process kept to its own core of those this process may
    use, with `parallel.ONE_THREAD_PER_DEVICE` and, on an accelerator, at most
    `MEMORY_SHARE / jobs` of its memory. A finished run is read back, never trained
    again; a run another live process holds is skipped: left out. `done(run, results)`
    is called here as each run finishes."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: expected an integer >= 1")
    return _Pool(jobs, done or (lambda run, results: None)).train(runs, train)


def train_finished(run: Run) -> dict | None:
    """A finished run's results, read back without taking its lock; None for a run to
    train; `RunLocked` for one that another live process trains."""
    results = train.finished_results(run.config, run.workdir)
    holder = Workdir(run.workdir).lock.live_holder() if results is None else None
    if holder is not None:
        raise RunLocked(f"{run.workdir} is in use by another training run (pid "
                        f"{holder.get('pid')} on host {holder.get('host')})")  # fmt: skip
    return results


def child_environment(jobs: int) -> dict[str, str]:
    """This process's environment for a child: one XLA thread (the user's `XLA_FLAGS`
    kept), this copy of `lmttm_jax` importable, its share of an accelerator's memory
    unless the user chose one."""
    env = dict(os.environ)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{MEMORY_SHARE / jobs:.3f}")
    parallel.one_thread_per_device(env)
    package_parent = str(Path(lmttm_jax.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def usable_cores() -> list[int]:
    """The CPU cores this process may run on, in order; empty where the operating
    system cannot pin a process to a core (children then run unpinned)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@dataclasses.dataclass
class _Child:
    run: Run
    process: subprocess.Popen
    relay: threading.Thread
    slot: int  # which of the `jobs` places it holds: its core


class _Pool:
    """The runs of `train_runs`, each in a child process with `jobs` > 1."""

    def __init__(self, jobs: int, done: Done):
        self.jobs, self.done = jobs, done
        self.env = child_environment(jobs)
        self.cores = usable_cores()
        self.free_slots = list(range(jobs))
        self.print_lock = threading.Lock()

    def say(self, line: str) -> None:
        with self.print_lock:
            print(line, flush=True)

    def train(self, runs: Sequence[Run], train: Train) -> dict[str, dict]:
        out: dict[str, dict] = {}
        failed: dict[str, str] = {}  # run name -> message, in the order runs end
        pending: list[Run] = []
        for run in runs:  # finished runs read back first; with jobs=1, every run trained here
            try:
                results = train_finished(run)
                if results is None and self.jobs == 1:
                    results = train(run.config, run.workdir)
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
        run.workdir.mkdir(parents=True, exist_ok=True)
        log, slot = run.workdir / LOG_NAME, self.free_slots.pop(0)
        command, where = [sys.executable, "-m", CHILD, str(run.workdir)], ""
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
        log = run.workdir / LOG_NAME
        failed[run.name] = f"run {run.name} failed (exit {code}): {last_line(log)}; log: {log}"
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
    lines = path.read_text().splitlines() if path.is_file() else []
    return next((line.strip() for line in reversed(lines) if line.strip()), "(no output)")
