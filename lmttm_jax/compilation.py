"""JAX's persistent compilation cache, and steps compiled ahead of time that say so.

The cache keeps every compiled program on disk for later processes (a resumed run,
eval, predict, every fold and seed of a sweep); `config.train.compile_cache` names
its folder ("" turns it off) and `setup(path)` points JAX at it. `AnnouncedStep`
logs each compile of a jitted step, its duration and whether the cache had it; a long
compile explains itself once (`NOTICE`), says every `HEARTBEAT_SECONDS` that it still
runs, and runs in a thread so that Ctrl-C interrupts it at once (`abandoned()`).
Processes sharing the cache compile a program once (`program_lock`).
"""

import contextlib
import datetime
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
from jax.experimental.compilation_cache import compilation_cache

ENV = "LMTTM_JAX_COMPILE_CACHE"
# Programs that compile faster than this are not written (eager ops, tiny helpers).
MIN_COMPILE_SECONDS = 0.2
_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_hits = 0
HEARTBEAT_SECONDS = 30  # a compile says it still runs this often
NOTICE_AFTER_SECONDS = 5  # a compile this long explains itself, once per process
NOTICE = (
    "note: a new program is compiled for this machine: the first run of a model takes "
    "30-90 s per program on a 2-core CPU (longer on a busy one); it is cached{where}, "
    "so later runs load it in seconds"
)
_noticed = False
_running: list[threading.Thread] = []  # compiles a Ctrl-C left behind


# ----------------------------------------------------------------------------- cache


def default_dir() -> str:
    """`$LMTTM_JAX_COMPILE_CACHE` if set, else `$XDG_CACHE_HOME/lmttm_jax/jax`, else
    `~/.cache/lmttm_jax/jax`."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "lmttm_jax" / "jax")


def current_dir() -> str:
    """The folder JAX's persistent cache uses now, "" when it is off."""
    return jax.config.jax_compilation_cache_dir or ""


def setup(path: str) -> None:
    """Points JAX's persistent cache at `path` ("~" expanded), or turns it off for "";
    a change of folder resets JAX's cache object."""
    path = str(Path(path).expanduser()) if path else ""
    if path == current_dir():
        return
    jax.config.update("jax_compilation_cache_dir", path or None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    compilation_cache.reset_cache()


def _on_event(event: str, **kwargs: Any) -> None:
    global _hits
    if event == _HIT_EVENT:
        _hits += 1


# Programs loaded from the persistent cache so far: a compile that raises the count was loaded.
jax.monitoring.register_event_listener(_on_event)


def lock_path(folder: str, program_text: str) -> Path:
    """The lock file of a program (its text) in the cache folder `folder`."""
    return Path(folder) / "locks" / hashlib.sha256(program_text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def program_lock(lowered: Any, note: Callable[[], None]) -> Iterator[None]:
    """Holds an exclusive lock on the program's `lock_path` while the block compiles
    it; calls `note()` first when another process holds it. No lock with the cache
    off, where the folder cannot be locked, or in a multi-process run (its processes
    compile together: one waiting for another would never finish)."""
    folder = current_dir()
    if not folder or jax.process_count() > 1:
        yield
        return
    path = lock_path(folder, lowered.as_text())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")
    except OSError:
        yield
        return
    with handle:  # closing the file releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note()
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: compile alongside
        yield


# ----------------------------------------------------------------------------- steps


def signature(args: tuple) -> tuple:
    """What a compiled program is specific to: the tree structure and each leaf's
    shape, dtype, weak type and sharding."""
    leaves, tree = jax.tree.flatten(args)
    return tree, tuple(
        (x.shape, x.dtype, getattr(x, "weak_type", False), getattr(x, "sharding", None))
        for x in leaves
    )


class AnnouncedStep:
    """A jitted function compiled ahead of time once per `signature` of its arguments,
    with a line before (`compiling the <name>...`) and one after (seconds, and whether
    the persistent cache had it). `seconds` sums the compile times so far."""

    def __init__(self, jitted: Any, name: str, log: Callable[[str], None]):
        self.jitted, self.name, self.log = jitted, name, log
        self.programs: dict[tuple, Any] = {}
        self.seconds = 0.0
        self.from_cache: list[bool] = []  # one entry per compilation, in order

    def __call__(self, *args: Any) -> Any:
        key = signature(args)
        if key not in self.programs:
            self.programs[key] = self.compile(*args)
        return self.programs[key](*args)

    def compile(self, *args: Any) -> Any:
        """The program for `args`, compiled now (or loaded from the cache)."""
        self.log(f"compiling the {self.name}...")
        before, start = _hits, time.perf_counter()
        lowered = self.jitted.lower(*args)
        waiting = f"waiting for another process compiling the same {self.name}..."
        with program_lock(lowered, lambda: self.log(waiting)):
            program = self._watched(lowered.compile, start)
        seconds = time.perf_counter() - start
        cached = _hits > before
        self.seconds += seconds
        self.from_cache.append(cached)
        how = "loaded from the compile cache" if cached else "compiled"
        self.log(f"{self.name} {how} in {seconds:.1f} s")
        return program

    def _watched(self, compile_program: Callable[[], Any], start: float) -> Any:
        """`compile_program()` in a thread, this thread waiting for it: the notice, the
        heartbeat, and Ctrl-C as soon as it is pressed."""
        global _noticed
        result: list[Any] = []

        def run() -> None:
            try:
                result.append(compile_program())
            except BaseException as err:  # handed to the waiting thread
                result.append(err)

        worker = threading.Thread(target=run, name=f"compile {self.name}", daemon=True)
        worker.start()
        beats = 0
        try:
            while worker.is_alive():
                worker.join(0.25)
                elapsed = time.perf_counter() - start
                if not _noticed and elapsed > NOTICE_AFTER_SECONDS and worker.is_alive():
                    _noticed = True
                    folder = current_dir()
                    where = f" in {folder}" if folder else " nowhere (compile_cache is off)"
                    self.log(NOTICE.format(where=where))
                if elapsed > (beats + 1) * HEARTBEAT_SECONDS and worker.is_alive():
                    beats += 1
                    clock = datetime.timedelta(seconds=round(elapsed))
                    self.log(f"still compiling the {self.name}, {clock}")
        except BaseException:
            _running.append(worker)
            raise
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]


def abandoned() -> bool:
    """Whether a compile that Ctrl-C interrupted still runs (the process should end
    without waiting for it: `os._exit`)."""
    return any(t.is_alive() for t in _running)
