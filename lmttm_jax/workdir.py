"""A run's directory and its one owner: paths, config, metrics, results, checkpoints, lock.

```
<workdir>/
  config.json          the run's config; a rerun must match it (`check_config`)
  metrics.jsonl        one JSON row per trained epoch, appended
  results.json         the selected epoch's validation and test metrics
  scores.npz           `{split}_labels [N]`, `{split}_probs [N, C]` behind them (val, test)
  eval_<split>.json    --mode=eval
  <flag>_<split>_[AUC]x_[ACC]y@<run>.csv   probabilities in the MedMNIST evaluator format
  curves.png, explain.png, explain_memory.png   --mode=plot / --mode=explain
  events.out.tfevents.*                         TensorBoard scalars
  checkpoints/latest/<epoch>/   the last two epochs (resume)
  checkpoints/best/<epoch>/     the epoch selected on validation
  checkpoints/checksums.json    SHA-256 of every saved checkpoint
  lock                 present while a training run writes (pid, host, start time)
  train.log            the output of a run trained in a child process (`run_processes`)
  members/<i>/         an ensemble's member i (`config.train.ensemble`): a run of its
                       own; the top level then holds the ensemble's config, results, CSV
```

Guarantees: a run's config never changes under it; one writer at a time (readers
take no lock and see only complete files: every file but `metrics.jsonl` is written
through a rename, and a torn last line of `metrics.jsonl` is ignored); a damaged
checkpoint is detected by its checksum. Failures a user can fix raise `WorkdirError`
with a one-line message.
"""

import contextlib
import datetime
import hashlib
import json
import math
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax.traverse_util import flatten_dict

from lmttm_jax import data as data_lib

# Fields that cannot change a run's numbers: a rerun may change them (the new values
# are stored). Any other difference is refused. (`data.root` of the folder dataset is
# the data itself: see `result_neutral_fields`.)
RESULT_NEUTRAL_FIELDS = (
    "data.root",
    "data.download",
    "train.eval_batch_size",
    "train.compile_cache",
)
CHECKPOINT_KINDS = ("latest", "best")
KEEP = {"latest": 2, "best": 1}  # two latest steps: a damaged one falls back to the other


class WorkdirError(Exception):
    """A run directory cannot be used as asked; the message is one line for the user."""


def _reason(err: BaseException) -> str:
    """An OS error's reason (`Read-only file system`) from `err` or its causes, else
    the first line of `err`'s message."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def _atomic(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file to write that replaces `path` when the block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".tmp-")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    with _atomic(path) as f:
        f.write(text)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Atomic, indented JSON (NaN written as null)."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=1) + "\n")


def read_json(path: Path, what: str) -> Any:
    """The JSON in `path`; a file that is not JSON is a `WorkdirError` naming it and
    `what` to do."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError as err:
        raise WorkdirError(f"{path} is not valid JSON ({err}): {what}") from err


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turns an OS error while writing `path` into a `WorkdirError` naming it and why."""
    try:
        yield
    except OSError as err:
        raise WorkdirError(f"cannot write {err.filename or path}: {_reason(err)}") from err


def _store(path: Path, text: str) -> None:
    """`atomic_write_text` (OS errors as `WorkdirError`) unless `path` holds `text`."""
    if path.is_file() and path.read_text() == text:
        return
    with writing(path):
        atomic_write_text(path, text)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM (where they interrupt, as in `main.py`) wait until the block
    ends, then interrupt with `KeyboardInterrupt`: a checkpoint and its checksum are
    written whole. A second one interrupts at once (a save that hangs). Outside the
    main thread (no signal handlers there) a plain block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def defer(number: int, _frame: Any) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(number)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    deferred = [s for s, handler in previous.items() if handler is signal.default_int_handler]
    for signum in deferred:
        signal.signal(signum, defer)
    try:
        yield
    finally:
        for signum in deferred:
            signal.signal(signum, previous[signum])
    if received:
        raise KeyboardInterrupt


# ----------------------------------------------------------------------------- checkpoints


def directory_digest(directory: Path) -> str:
    """SHA-256 over the relative paths and contents of every file below `directory`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Checkpoints:
    """`latest/` (resume) and `best/` (selected on validation) orbax checkpoints, and
    a SHA-256 of each saved step in `checksums.json`.

    Orbax renames a step into place when it is complete (a killed save leaves only a
    `*.orbax-checkpoint-tmp-*` that the writer deletes when it starts). A `read_only`
    reader neither creates nor cleans anything, so it can run beside training.
    """

    def __init__(self, directory: Path, read_only: bool = False, record: bool = True):
        self.directory = Path(directory).absolute()  # orbax needs absolute paths
        self.checksums_path = self.directory / "checksums.json"
        self.record = record and not read_only  # only the main process writes checksums
        self.managers = {
            kind: ocp.CheckpointManager(
                self.directory / kind,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=KEEP[kind],
                    enable_async_checkpointing=False,
                    create=not read_only,
                    cleanup_tmp_directories=not read_only,
                ),
            )
            for kind in CHECKPOINT_KINDS
        }

    def path(self, kind: str, step: int) -> Path:
        return self.directory / kind / str(step)

    def steps(self, kind: str) -> list[int]:
        return sorted(self.managers[kind].all_steps())

    def _checksums(self) -> dict[str, str]:
        try:
            return json.loads(self.checksums_path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise WorkdirError(f"{self.checksums_path} is not valid JSON: {err}") from err

    def _write_checksums(self, checksums: dict[str, str]) -> None:
        _store(self.checksums_path, json.dumps(checksums, indent=1))

    def is_damaged(self, kind: str, step: int) -> bool:
        """Whether the step's files differ from the checksum recorded when it was saved
        (a step saved before its checksum was recorded counts as intact)."""
        expected = self._checksums().get(f"{kind}/{step}")
        return expected is not None and expected != directory_digest(self.path(kind, step))

    def save(self, kind: str, epoch: int, state: Any, meta: dict) -> None:
        """Saves `state` and `meta` as step `epoch` of `kind` (replacing a step of that
        number left by an interrupted run) and records its checksum."""
        manager, key, path = self.managers[kind], f"{kind}/{epoch}", self.path(kind, epoch)
        if self.record and key in (checksums := self._checksums()):
            del checksums[key]
            self._write_checksums(checksums)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        try:
            self._reserve(sum(x.nbytes for x in jax.tree.leaves(state)))
            if epoch in manager.all_steps():  # left by an interrupted run; same content
                manager.delete(epoch)
            manager.save(epoch, args=args, force=True)
            manager.wait_until_finished()
        except Exception as err:  # I/O of any layer (tensorstore, orbax, OS)
            raise WorkdirError(f"cannot save checkpoint {path}: {_reason(err)}") from err
        if self.record:
            kept = {f"{k}/{s}" for k in CHECKPOINT_KINDS for s in self.steps(k)}
            checksums = {k: v for k, v in self._checksums().items() if k in kept}
            checksums[key] = directory_digest(path)
            self._write_checksums(checksums)

    def _reserve(self, nbytes: int) -> None:
        """Fails with the OS reason (disk full, read-only) before orbax writes a step of
        about `nbytes`, whose writer threads would also print their tracebacks."""
        probe = self.directory / ".space-check"
        try:
            with open(probe, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, max(nbytes, 1))
        finally:
            probe.unlink(missing_ok=True)

    def _checked_step(self, kind: str, step: int | None) -> int:
        """`step` (default: the newest of `kind`) after checking its checksum."""
        step = self.managers[kind].latest_step() if step is None else step
        if step is None:
            raise WorkdirError(f"no checkpoint in {self.directory / kind}: train the run first")
        if self.is_damaged(kind, step):
            raise WorkdirError(
                f"checkpoint {self.path(kind, step)} fails its checksum (the files changed "
                f"after it was saved): train again in a new --workdir"
            )
        return step

    def _restore(self, kind: str, step: int, state: Any) -> tuple[Any, dict]:
        args = ocp.args.Composite(state=state, meta=ocp.args.JsonRestore())
        restored = self.managers[kind].restore(step, args=args)
        return restored.state, restored.meta

    def restore(self, kind: str, state: Any, step: int | None = None) -> tuple[Any, dict]:
        """The state (shaped like `state`, concrete or abstract) and meta of a step
        (default: the newest) after checking its checksum."""
        step = self._checked_step(kind, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        try:
            return self._restore(kind, step, ocp.args.StandardRestore(abstract))
        except ValueError as err:  # orbax: a stored shape or tree that the model lacks
            raise WorkdirError(
                f"checkpoint {self.path(kind, step)} does not hold the state of the run's "
                f"model ({_reason(err)}); was config.json edited? Restore it, or train "
                f"again in a new --workdir"
            ) from err

    def restore_part(self, kind: str, part: dict[str, Any]) -> tuple[dict[str, Any], dict]:
        """The entries `part` names of the newest step's state (e.g. `{"params": tree of
        jax.ShapeDtypeStruct}`) as stored, and the step's meta, for a reader without
        the optimiser (predict, eval); the caller checks the shapes."""
        step = self._checked_step(kind, None)
        state = ocp.args.PyTreeRestore(
            item=part,
            restore_args=ocp.checkpoint_utils.construct_restore_args(part),
            partial_restore=True,
        )
        return self._restore(kind, step, state)

    def restore_for_resume(self, state: Any, note: Callable[[str], None]) -> tuple[Any, dict]:
        """The newest intact `latest` step, or (`state`, epoch-0 meta) if there is none.
        A damaged step is reported with `note`, deleted, and the previous one used."""
        steps = self.steps("latest")
        for newer in reversed(steps):
            if not self.is_damaged("latest", newer):
                return self.restore("latest", state, newer)
            older = [s for s in steps if s < newer]
            then = (
                f"falling back to {self.path('latest', older[-1])}"
                if older
                else "no earlier checkpoint: training starts again from epoch 1"
            )
            note(f"checkpoint {self.path('latest', newer)} fails its checksum; {then}")
            self.managers["latest"].delete(newer)
            steps = older
        return state, {"epoch": 0, "best": None}

    def last_epoch(self) -> int:
        """The newest `latest` step (0 if none)."""
        return max(self.steps("latest"), default=0)

    def kept(self) -> str:
        """Which `latest` checkpoint training would resume from, in words."""
        if epoch := self.last_epoch():
            return f"the last good checkpoint is {self.path('latest', epoch)}"
        return "no checkpoint exists yet"


# ----------------------------------------------------------------------------- lock


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    return True


class RunLocked(WorkdirError):
    """Another live process holds the run's lock (a worker of the same command moves
    on to another run)."""


HEARTBEAT_SECONDS = 30  # the holder touches its lock this often
STALE_SECONDS = 300  # a lock of another host untouched this long is a dead holder's


class Lock:
    """`<workdir>/lock`: created atomically with the holder's pid, host and start time,
    and touched every `HEARTBEAT_SECONDS` while held. A lock is stale, and is taken
    over, when its holder's process is gone (same host) or it has not been touched for
    `STALE_SECONDS` (another host, e.g. a killed job of a cluster array)."""

    def __init__(self, path: Path):
        self.path = path
        self._beating: threading.Event | None = None

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # unreadable: never written by `acquire` (it links complete files)

    def acquire(self, note: Callable[[str], None]) -> None:
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with writing(tmp):
            tmp.write_text(json.dumps(mine) + "\n")
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # fails if the lock exists: no race
                    self._beat()
                    return
                except FileExistsError:
                    self._take_over_if_stale(note)
            raise WorkdirError(f"cannot take the lock {self.path}")
        except OSError as err:
            raise WorkdirError(f"cannot write {self.path}: {_reason(err)}") from err
        finally:
            tmp.unlink(missing_ok=True)

    def _beat(self) -> None:
        """Touches the lock every `HEARTBEAT_SECONDS` until `release`."""
        self._beating = stop = threading.Event()

        def touch() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        threading.Thread(target=touch, daemon=True).start()

    def live_holder(self) -> dict | None:
        """The holder of a lock that is not stale (None: free, or stale)."""
        holder = self._holder()
        if holder is None:
            return None
        pid, host = holder.get("pid"), holder.get("host")
        if host == socket.gethostname() and isinstance(pid, int):
            return holder if _process_alive(pid) else None
        try:
            idle = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        return holder if idle < STALE_SECONDS or not host else None

    def _take_over_if_stale(self, note: Callable[[str], None]) -> None:
        holder = self._holder()
        if holder is None:
            return  # released meanwhile
        pid, host = holder.get("pid"), holder.get("host")
        if self.live_holder() is None:
            note(f"taking over {self.path} left by process {pid} on {host} (no longer running)")
            self.path.unlink(missing_ok=True)
            return
        raise RunLocked(
            f"{self.path.parent} is in use by another training run (pid {pid} on host "
            f"{host}, started {holder.get('started')}); wait for it to end, or delete "
            f"{self.path} if that process is gone"
        )

    def release(self) -> None:
        if self._beating is not None:
            self._beating.set()
            self._beating = None
        holder = self._holder()
        if holder and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- workdir


def result_neutral_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """`RESULT_NEUTRAL_FIELDS`, without `data.root` where it names the volumes."""
    if config.data.name == data_lib.FOLDER_FLAG:
        return tuple(f for f in RESULT_NEUTRAL_FIELDS if f != "data.root")
    return RESULT_NEUTRAL_FIELDS


def _config_changes(
    config: ml_collections.ConfigDict, stored: ml_collections.ConfigDict | None
) -> list[str]:
    """`field old -> new` for each field where `config` differs from `stored` (none
    without a stored config)."""
    if stored is None:
        return []
    old, new = (
        flatten_dict(json.loads(c.to_json_best_effort()), sep=".") for c in (stored, config)
    )
    missing = object()

    def shown(fields: dict, key: str) -> str:
        return repr(fields[key]) if key in fields else "(absent)"

    return [
        f"{key} {shown(old, key)} -> {shown(new, key)}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    ]


class Workdir:
    """The files of one run. Training writes between `begin_writing()` (directory and
    lock) and `end_writing()`; readers use the `read_*` methods and
    `checkpoints(read_only=True)`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.results_path = self.path / "results.json"
        self.scores_path = self.path / "scores.npz"
        self.checkpoints_path = self.path / "checkpoints"
        self.curves_path = self.path / "curves.png"
        self.members_path = self.path / "members"
        self.lock = Lock(self.path / "lock")
        self._locked = False

    def __str__(self) -> str:
        return str(self.path)

    def eval_path(self, split: str) -> Path:
        return self.path / f"eval_{split}.json"

    def member(self, index: int) -> "Workdir":
        """Member `index` of an ensemble run: `<workdir>/members/<index>/`."""
        return Workdir(self.members_path / str(index))

    def members(self) -> list["Workdir"]:
        """The ensemble members present, in order ([] for a single run)."""
        found = sorted(int(p.name) for p in self.members_path.glob("*") if p.name.isdigit())
        return [self.member(index) for index in found]

    # ---- config (checked configs: `lmttm_jax.config` reads and checks config.json)

    def has_progress(self) -> bool:
        """Whether a checkpoint, a metrics row or results are stored (members included)."""
        if self.results_path.exists() or self.read_metrics():
            return True
        if any(member.has_progress() for member in self.members()):
            return True
        steps = (self.checkpoints_path / kind for kind in CHECKPOINT_KINDS)
        return any(any(folder.glob("[0-9]*")) for folder in steps)

    def check_config(
        self, config: ml_collections.ConfigDict, stored: ml_collections.ConfigDict | None
    ) -> list[str]:
        """Refuses (`WorkdirError`) a config that differs from the run's `stored` one in
        a field that can change its results once anything is trained; returns the changes."""
        changes, neutral = _config_changes(config, stored), result_neutral_fields(config)
        fixed = [c for c in changes if c.split(" ", 1)[0] not in neutral]
        if fixed and self.has_progress():
            raise WorkdirError(
                f"{self.path} holds a run with another config: {'; '.join(fixed)}. "
                f"Use a new --workdir (only {', '.join(neutral)} may change)"
            )
        return changes

    def write_config(self, config: ml_collections.ConfigDict) -> None:
        """Stores `config` unless config.json already holds exactly it."""
        _store(self.config_path, config.to_json_best_effort(indent=1))

    # ---- metrics

    def read_metrics(self, up_to_epoch: float = math.inf) -> list[dict]:
        """The rows of metrics.jsonl with `epoch <= up_to_epoch` ([] if absent). A last
        line without its newline that is not JSON (a write cut by a kill) is dropped;
        any other bad line is an error naming it."""
        try:
            lines = self.metrics_path.read_text().split("\n")
        except FileNotFoundError:
            return []
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as err:
                if number < len(lines):  # not torn by a kill: it has its newline
                    path = self.metrics_path
                    raise WorkdirError(f"{path} line {number} is not a JSON row: {err}") from err
        return [row for row in rows if row["epoch"] <= up_to_epoch]

    def keep_metrics(self, up_to_epoch: int) -> None:
        """Rewrites metrics.jsonl with the rows up to `up_to_epoch` (the checkpoint's):
        newer rows, and a torn last line, are dropped to be trained again."""
        _store(
            self.metrics_path, "".join(json.dumps(r) + "\n" for r in self.read_metrics(up_to_epoch))
        )

    def append_metrics(self, row: dict) -> None:
        with writing(self.metrics_path), open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    # ---- results

    def read_results(self) -> dict:
        what = f"delete it and run the same command to evaluate {self.path} again"
        return read_json(self.results_path, what)

    def write_json(self, path: Path, obj: Any) -> None:
        with writing(path):
            write_json(path, obj)

    def write_scores(self, scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """`scores.npz`: the labels `[N]` and probabilities `[N, C]` of each split."""
        arrays = {
            f"{s}_{k}": a
            for s, pair in scores.items()
            for k, a in zip(("labels", "probs"), pair, strict=True)
        }
        with writing(self.scores_path), _atomic(self.scores_path, "wb") as f:
            np.savez(f, **arrays)

    def read_scores(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{split: (labels, probs)} of `scores.npz` (`WorkdirError` naming it if absent
        or damaged)."""
        try:
            with np.load(self.scores_path) as npz:
                splits = sorted({k.rsplit("_", 1)[0] for k in npz.files})
                return {s: (npz[f"{s}_labels"], npz[f"{s}_probs"]) for s in splits}
        except FileNotFoundError:
            raise WorkdirError(
                f"{self.scores_path} not found: train the run to its end (runs finished "
                f"before scores were kept: delete results.json and run the command again)"
            ) from None
        except (OSError, ValueError, KeyError) as err:
            raise WorkdirError(f"{self.scores_path} is damaged ({err}): delete it and "
                               f"results.json and run the same command again") from err  # fmt: skip

    def write_predictions_csv(self, name: str, probs: np.ndarray) -> None:
        """`name` (`evaluate.evaluation_csv_name`): one line per sample,
        `index,p_0,...,p_{C-1}`, as the MedMNIST evaluator reads it."""
        lines = [",".join([str(i)] + [repr(float(p)) for p in row]) for i, row in enumerate(probs)]
        with writing(self.path / name):
            atomic_write_text(self.path / name, "\n".join(lines) + "\n")
            for old in self.path.glob(f"*@{name.rsplit('@', 1)[1]}"):  # the run's earlier one
                if old.name != name:
                    old.unlink()

    # ---- checkpoints and the writer's lock

    def checkpoints(self, read_only: bool = False, record: bool = True) -> Checkpoints:
        if read_only and not self.checkpoints_path.is_dir():
            raise WorkdirError(f"no checkpoint in {self.checkpoints_path}: train the run first")
        return Checkpoints(self.checkpoints_path, read_only=read_only, record=record)

    def begin_writing(self, note: Callable[[str], None], lock: bool = True) -> None:
        """Creates the directory and takes its lock (unless `lock` is False: processes
        other than the main one); `end_writing` releases it."""
        if self.path.exists() and not self.path.is_dir():
            raise WorkdirError(f"cannot use {self.path} as --workdir: it is a file")
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        if lock:
            self.lock.acquire(note)
            self._locked = True

    def end_writing(self) -> None:
        if self._locked:
            self.lock.release()
            self._locked = False
