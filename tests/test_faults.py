"""Faults and bad inputs against `main.py` on the synthetic set: each ends in one
`error:` line naming the problem, a non-zero exit code and no traceback, and leaves a
run's files byte for byte as they were; or it recovers to the numbers of an
uninterrupted run. Subprocesses share a JAX compilation cache, so only the first
training of a shape compiles."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from lmttm_jax import config as config_lib
from lmttm_jax import train
from lmttm_jax.data import ensure_dataset, medmnist3d, write_synthetic
from lmttm_jax.workdir import Workdir, WorkdirError, interrupts_deferred
from tests.tiny import TINY_MODEL

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds for one subprocess (a compile included)
TRAIN = {
    "epochs": 2,
    "batch_size": 16,
    "eval_batch_size": 16,
    "learning_rate": 3e-3,
    "warmup_epochs": 0,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    sizes = {"train": 48, "val": 16, "test": 16}
    write_synthetic(root / "synthetic3d.npz", seed=0, size=28, n_samples=sizes)
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("cache")
    return dict(
        os.environ,
        JAX_COMPILATION_CACHE_DIR=str(cache / "jax"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        XDG_CACHE_HOME=str(cache),
    )


def train_args(root: Path, workdir: Path, **train_fields) -> list[str]:
    fields = {
        "data.root": root,
        **{f"model.{k}": v for k, v in TINY_MODEL.items()},
        **{f"train.{k}": v for k, v in (TRAIN | train_fields).items()},
    }
    overrides = [f"--config.{k}={v}" for k, v in fields.items()]
    return ["--config=configs/synthetic.py", f"--workdir={workdir}", *overrides]


# `python main.py ARGS` after `setup`; Ctrl-C raises KeyboardInterrupt even where the
# tests were started with SIGINT ignored (a background job).
LAUNCH = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
{setup}
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
"""
# Each training batch waits 0.5 s, so an interrupt sent once epoch 1 is saved lands
# in epoch 2's batches, however fast the steps (compiled programs come from a cache).
SLOW_BATCHES = """
import time
from lmttm_jax import data
_batches = data.train_batches
def _slow_batches(*args, **kwargs):
    for batch in _batches(*args, **kwargs):
        time.sleep(0.5)
        yield batch
data.train_batches = _slow_batches
"""
# Every compile takes 10 minutes (a sleep before XLA's compile), and the heartbeat
# beats every 2 s: the notice and the heartbeat show up before any epoch.
SLOW_COMPILE = """
import time
import jax
from lmttm_jax import compilation
compilation.HEARTBEAT_SECONDS = 2
_compile = jax.stages.Lowered.compile
def _slow_compile(self, *args, **kwargs):
    time.sleep(600)
    return _compile(self, *args, **kwargs)
jax.stages.Lowered.compile = _slow_compile
"""
# Writes past 50 kB fail (EFBIG) as they would on a full disk (ENOSPC).
SMALL_FILES = """
import resource
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
"""


def start(env: dict, args: list[str], setup: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH.format(setup=setup), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def main_py(env: dict, *args: str, setup: str = "") -> subprocess.CompletedProcess:
    return finish(start(env, list(args), setup))


def assert_one_line_error(result: subprocess.CompletedProcess, *names: str, code: int = 1):
    """Exit code `code`, one `error:` line holding every one of `names`, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    for name in names:
        assert str(name) in line, line


def snapshot(workdir: Path) -> dict[str, bytes]:
    """Every run file (config, metrics, results, checkpoints) by relative path."""
    skip = ("events.out.tfevents", "lock")
    return {
        str(p.relative_to(workdir)): p.read_bytes()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and not p.name.startswith(skip)
    }


def comparable(workdir: Path) -> tuple[dict, list[dict]]:
    """results.json and metrics.jsonl without timings."""
    results = json.loads((workdir / "results.json").read_text())
    for split in ("val", "test"):
        results[split].pop("samples_per_second")
    results.pop("train_samples_per_second")
    rows = [
        {k: v for k, v in row.items() if "second" not in k}
        for row in Workdir(workdir).read_metrics()
    ]
    return results, rows


def flip_a_byte(checkpoint: Path) -> Path:
    """Damages the largest file of a checkpoint step (one bit of its middle byte)."""
    path = max((p for p in checkpoint.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def finished(root, env, tmp_path_factory) -> tuple[Path, list[str], subprocess.CompletedProcess]:
    """A 2-epoch run interrupted with Ctrl-C after epoch 1, then resumed to the end."""
    workdir = tmp_path_factory.mktemp("run") / "run"
    args = train_args(root, workdir)
    interrupted = interrupt_after_epoch_1(env, args, signal.SIGINT)
    resumed = main_py(env, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming from" in resumed.stdout
    return workdir, args, interrupted


def interrupt_after_epoch_1(env: dict, args: list[str], signum: int):
    """Runs `main.py args` (slowed by `SLOW_BATCHES`), sends `signum` once epoch 1 is
    saved and returns the finished process."""
    proc = start(env, args, SLOW_BATCHES)
    workdir = Path(next(a for a in args if a.startswith("--workdir=")).split("=", 1)[1])
    deadline = time.monotonic() + TIMEOUT
    while not (workdir / "checkpoints" / "latest" / "1").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc, 1)
        time.sleep(0.02)
    proc.send_signal(signum)
    return finish(proc)


def copy_run(finished, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the finished run and its training arguments."""
    workdir, args, _ = finished
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    return copy, [a.replace(str(workdir), str(copy)) for a in args]


# ----------------------------------------------------------------------------- a run's lifetime


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(finished):
    workdir, _, interrupted = finished
    message = "interrupted after epoch 1; run the same command to resume"
    assert_one_line_error(interrupted, message, code=130)
    assert not (workdir / "lock").exists()
    assert [r["epoch"] for r in Workdir(workdir).read_metrics()] == [1, 2]


def test_sigterm_stops_as_ctrl_c_does(root, env, tmp_path):
    workdir = tmp_path / "run"
    interrupted = interrupt_after_epoch_1(env, train_args(root, workdir), signal.SIGTERM)
    message = "interrupted after epoch 1; run the same command to resume"
    assert_one_line_error(interrupted, message, code=130)
    assert not (workdir / "lock").exists()
    assert [r["epoch"] for r in Workdir(workdir).read_metrics()] == [1]


def test_ctrl_c_during_a_compile_exits_at_once_and_the_rerun_starts_fresh(root, env, tmp_path):
    workdir = tmp_path / "run"
    args = train_args(root, workdir)
    proc = start(env, args, SLOW_COMPILE)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + TIMEOUT
    told = ("still compiling the train step", "note: a new program is compiled")
    while not all(any(t in line for line in lines) for t in told):
        assert proc.poll() is None and time.monotonic() < deadline, finish(proc, 1)
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=TIMEOUT)
    assert time.monotonic() - sent < 10
    reader.join(5)
    stderr = proc.stderr.read()
    assert code == 130, "".join(lines) + stderr
    assert "Traceback" not in stderr, stderr
    assert not any("epoch 1/" in line for line in lines), lines
    assert not (workdir / "lock").exists()
    rerun = main_py(env, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming" not in rerun.stdout
    assert [r["epoch"] for r in Workdir(workdir).read_metrics()] == [1, 2]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_save_waits_for_the_save_to_end(signum):
    previous = signal.signal(signum, signal.default_int_handler)  # as main.py has it
    ended = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signum)
                time.sleep(0.2)  # the signal arrives here and waits
                ended.append(True)
        assert ended
        assert signal.getsignal(signum) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):  # a second one stops at once
            with interrupts_deferred():
                os.kill(os.getpid(), signum)
                time.sleep(0.2)
                os.kill(os.getpid(), signum)
                time.sleep(0.2)
                ended.append(True)
        assert len(ended) == 1
    finally:
        signal.signal(signum, previous)


def test_changed_config_is_refused_before_anything_is_written(finished, env):
    workdir, args, _ = finished
    before = snapshot(workdir)
    result = main_py(env, *args, "--config.train.epochs=3", "--config.seed=5")
    assert_one_line_error(result, "train.epochs 2 -> 3", "seed 0 -> 5", "new --workdir")
    assert snapshot(workdir) == before


def test_a_run_with_nothing_trained_takes_a_changed_config(tmp_path):
    config = config_lib.validate_config(synthetic.get_config())
    run = Workdir(tmp_path / "run")
    run.write_config(config)
    epochs = config.train.epochs
    changed = config_lib.copy(config, **{"train.epochs": epochs + 1})
    assert not run.has_progress()  # nothing trained: nothing to protect
    assert run.check_config(changed, config) == [f"train.epochs {epochs} -> {epochs + 1}"]
    (run.checkpoints_path / "latest" / "1").mkdir(parents=True)
    assert run.has_progress()
    with pytest.raises(WorkdirError, match="train.epochs"):
        run.check_config(changed, config)


def test_result_neutral_change_is_stored_and_nothing_else_changes(finished, env, tmp_path):
    workdir, args = copy_run(finished, tmp_path)
    before = snapshot(workdir)
    result = main_py(env, *args, "--config.train.eval_batch_size=8")
    assert result.returncode == 0, result.stderr
    assert "train.eval_batch_size 16 -> 8" in result.stdout
    after = snapshot(workdir)
    assert json.loads(after.pop("config.json"))["train"]["eval_batch_size"] == 8
    before.pop("config.json")
    assert after == before  # results, metrics and checkpoints untouched


def test_second_writer_is_refused_readers_go_on_stale_lock_is_taken(finished, env, tmp_path):
    workdir, args = copy_run(finished, tmp_path)
    before = snapshot(workdir)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00Z"}
    (workdir / "lock").write_text(json.dumps(holder))
    result = main_py(env, *args)
    assert_one_line_error(result, f"pid {os.getpid()}", socket.gethostname(), "2026-01-01")
    out = tmp_path / "eval.json"  # a reader takes no lock, and needs only --workdir
    result = main_py(env, "--mode=eval", f"--workdir={workdir}", f"--output={out}")
    assert result.returncode == 0, result.stderr
    results = json.loads((workdir / "results.json").read_text())
    assert json.loads(out.read_text())["acc"] == results["test"]["acc"]
    assert snapshot(workdir) == before
    dead = subprocess.Popen(["true"])  # a pid that has ended
    dead.wait()
    (workdir / "lock").write_text(json.dumps(holder | {"pid": dead.pid}))
    result = main_py(env, *args)
    assert result.returncode == 0, result.stderr
    assert f"taking over {workdir / 'lock'}" in result.stdout
    assert not (workdir / "lock").exists() and snapshot(workdir) == before


def test_damaged_checkpoint_and_torn_metrics_line_resume_to_the_same_numbers(
    finished, env, tmp_path
):
    workdir, args = copy_run(finished, tmp_path)
    expected = comparable(workdir)
    (workdir / "results.json").unlink()  # as if killed before the end
    flip_a_byte(workdir / "checkpoints" / "latest" / "2")
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a write cut by a kill
    latest = workdir / "checkpoints" / "latest"
    result = main_py(env, *args)
    assert result.returncode == 0, result.stderr
    assert f"checkpoint {latest / '2'} fails its checksum; falling back to {latest / '1'}" in (
        result.stdout
    )
    assert comparable(workdir) == expected


def test_damaged_best_checkpoint_is_named_by_readers(finished, env, tmp_path):
    workdir, _ = copy_run(finished, tmp_path)
    (best,) = (workdir / "checkpoints" / "best").iterdir()
    flip_a_byte(best)
    result = main_py(env, "--mode=eval", f"--workdir={workdir}")
    assert_one_line_error(result, f"checkpoint {best} fails its checksum")
    np.save(tmp_path / "volume.npy", np.zeros((28, 28, 28), np.uint8))
    args = f"--workdir={workdir}", f"--input={tmp_path / 'volume.npy'}"
    result = main_py(env, "--mode=predict", *args)
    assert_one_line_error(result, f"checkpoint {best} fails its checksum")


@pytest.mark.slow
def test_nonfinite_first_epoch_saves_nothing_and_says_so(root, env, tmp_path):
    workdir = tmp_path / "run"
    args = train_args(root, workdir, skip_nonfinite=True, learning_rate=1e30)
    result = main_py(env, *args)
    assert_one_line_error(result, "at epoch 1", "epoch 1 is not saved", "no checkpoint exists yet")
    assert not list((workdir / "checkpoints").rglob("commit_success.txt"))
    assert Workdir(workdir).read_metrics() == [] and not (workdir / "results.json").exists()


def test_nonfinite_parameters_or_validation_loss_are_never_saved():
    finite = train.TrainState(
        step=0, apply_fn=None, params={"w": jnp.ones(3)}, tx=None, opt_state=None
    )
    broken = finite.replace(params={"w": jnp.array([1.0, jnp.inf, 0.0])})
    assert train.nonfinite_problem(0.5, 0, 0.7, finite) == ""
    assert train.nonfinite_problem(0.5, 0, 0.7, broken) == "the parameters are not all finite"
    assert train.nonfinite_problem(0.5, 0, np.nan, finite) == "validation loss is nan"
    assert "every step (6)" in train.nonfinite_problem(np.nan, 6, np.nan, finite)


# ----------------------------------------------------------------------------- start-up


@pytest.mark.parametrize(
    "args,code,names",
    [
        (["--config=configs/nope.py"], 2, ["--config=configs/nope.py", "no such file"]),
        (["--config=configs/organ.py:size=32"], 2, ["bad config variant 'size=32'"]),
        ([], 2, ["--config is required for --mode=train"]),
        (["+", "--config.train.epoch=3"], 2, ["no field", "'epoch'", '"epochs"']),
        (["+", "--config.train.batch_size=64"], 1, ["batch_size=64 exceeds the 48 training"]),
    ],
)
def test_bad_start_is_one_line_and_writes_no_run(root, env, tmp_path, args, code, names):
    """ "+": after the tiny run's config and overrides; else with --workdir alone."""
    workdir = tmp_path / "run"
    base = train_args(root, workdir)
    if args[:1] == ["+"]:
        args = args[1:]
    else:
        base = [f"--workdir={workdir}"]
    result = main_py(env, *base, *args)
    assert_one_line_error(result, *names, code=code)
    assert not (workdir / "config.json").exists() and not (workdir / "checkpoints").exists()


def test_explain_on_a_bad_volume_is_one_line(finished, env, tmp_path):
    workdir = finished[0]
    np.save(tmp_path / "flat.npy", np.zeros((28, 28), np.float32))
    result = main_py(env, "--mode=explain", f"--workdir={workdir}", f"--input={tmp_path}/flat.npy")
    assert_one_line_error(result, tmp_path / "flat.npy", "expected a 3D volume")


def _unwritable_parent(tmp_path: Path) -> tuple[Path, str]:
    """A folder this process cannot create entries in, and the OS reason."""
    if os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir(mode=0o555)
        return parent, "Permission denied"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without /sys: no folder is unwritable")
    return Path("/sys"), "Operation not permitted"  # root cannot create entries in sysfs


@pytest.mark.parametrize("where", ["under a file", "a file", "read-only"])
def test_unwritable_workdir_names_the_path_and_the_reason(root, env, tmp_path, where):
    (tmp_path / "file").write_text("not a folder")
    if where == "under a file":
        workdir, reason = tmp_path / "file" / "run", "Not a directory"
    elif where == "a file":
        workdir, reason = tmp_path / "file", "it is a file"
    else:
        parent, reason = _unwritable_parent(tmp_path)
        workdir = parent / "lmttm-run"
    result = main_py(env, *train_args(root, workdir))
    assert_one_line_error(result, workdir, reason)


@pytest.mark.slow
def test_disk_full_during_a_save_is_one_line(root, env, tmp_path):
    workdir = tmp_path / "run"
    result = main_py(env, *train_args(root, workdir), setup=SMALL_FILES)
    assert_one_line_error(result, f"cannot save checkpoint {workdir / 'checkpoints'}", "too large")
    assert not (workdir / "lock").exists()


# ----------------------------------------------------------------------------- dataset files


def test_dataset_md5_is_checked_once_per_size_and_mtime(root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []
    hash_file = medmnist3d._hash_file
    monkeypatch.setattr(medmnist3d, "_hash_file", lambda p: calls.append(p) or hash_file(p))
    copy = tmp_path / "adrenalmnist3d.npz"  # not the official file
    shutil.copy(root / "synthetic3d.npz", copy)
    for _ in range(2):
        assert ensure_dataset("adrenalmnist3d", 28, tmp_path, download_missing=False) == copy
    assert calls == [copy]  # hashed once
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(str(copy) in x and "delete it to download" in x for x in lines)
    os.utime(copy, ns=(0, 0))  # a changed file is hashed again
    ensure_dataset("adrenalmnist3d", 28, tmp_path, download_missing=False)
    assert calls == [copy, copy]


# ----------------------------------------------------------------------------- tampered files


def test_a_truncated_results_json_is_named_and_recovered(finished, env, tmp_path):
    workdir, args = copy_run(finished, tmp_path)
    expected = comparable(workdir)
    results = workdir / "results.json"
    results.write_bytes(results.read_bytes()[:40])  # cut by a full disk, say
    result = main_py(env, *args)
    assert_one_line_error(result, f"{results} is not valid JSON", "delete it and run the same")
    results.unlink()  # as the error says: evaluated again from the checkpoints
    assert main_py(env, *args).returncode == 0
    assert comparable(workdir) == expected


def test_an_edited_config_json_is_named_before_orbax_complains(finished, env, tmp_path):
    workdir, _ = copy_run(finished, tmp_path)
    stored = json.loads((workdir / "config.json").read_text())
    stored["model"]["dim"] = 16  # the checkpoint's model has 32
    (workdir / "config.json").write_text(json.dumps(stored))
    result = main_py(env, "--mode=eval", f"--workdir={workdir}")
    assert_one_line_error(result, str(workdir / "config.json"), "was config.json edited?")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"train.ensemble": 1, "train.ensemble_mode": "folds"}, "train.ensemble_mode='folds'"),
        ({"train.ensemble_jobs": 2}, "config.train.ensemble_jobs=2 is invalid"),
        ({"train.epochs": 10**22}, "config.train.epochs=10000000000000000000000 is invalid"),
        ({"data.shift": 100}, "config.data.shift=100 is invalid"),
    ],
)
def test_conflicting_or_implausible_options_are_refused(fields, message):
    config = synthetic.get_config()
    for path, value in fields.items():
        section, name = path.split(".")
        config[section][name] = value
    with pytest.raises(config_lib.ConfigError, match=re.escape(message)) as err:
        config_lib.validate_config(config)
    assert "\n" not in str(err.value)


# Appends a line to a file at every `validate_config` (through its combination check).
COUNT_CHECKS = """
from lmttm_jax import config as _config
_check = _config._check_combinations
def _counted(checked):
    with open(%r, "a") as f:
        f.write("checked\\n")
    return _check(checked)
_config._check_combinations = _counted
"""


@pytest.mark.parametrize("ensemble", [0, 2])
def test_a_command_validates_its_config_once(root, env, tmp_path, ensemble):
    counts = tmp_path / "checks.txt"
    args = train_args(root, tmp_path / "run", epochs=1, ensemble=ensemble)
    result = main_py(env, *args, setup=COUNT_CHECKS % str(counts))
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts.read_text().splitlines() == ["checked"]


def test_a_small_address_space_is_one_line_not_an_abort(root, env, tmp_path):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, "main.py", *train_args(root, tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=limit,
    )
    assert_one_line_error(result, "limited to 1024 MiB (ulimit -v)", "ulimit -v unlimited")
    assert not (tmp_path / "run").exists()
