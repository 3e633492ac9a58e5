"""The persistent compilation cache (folder, off switch, old configs) and announced,
ahead-of-time compiled steps; a resumed run loads its train step from the cache."""

import fcntl
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from configs import synthetic
from lmttm_jax import compilation
from lmttm_jax import config as config_lib
from lmttm_jax.data import write_synthetic

REPO = Path(__file__).resolve().parents[1]


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(compilation.ENV, str(tmp_path / "own"))
    assert compilation.default_dir() == str(tmp_path / "own")
    monkeypatch.delenv(compilation.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation.default_dir() == str(tmp_path / "xdg" / "lmttm_jax" / "jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compilation.default_dir() == str(tmp_path / "home" / ".cache" / "lmttm_jax" / "jax")


def test_tests_keep_the_cache_out_of_home():
    home = Path.home().resolve()
    assert home not in Path(compilation.default_dir()).resolve().parents


def test_setup_moves_and_turns_off_the_cache(tmp_path):
    before = compilation.current_dir()
    try:
        compilation.setup(str(tmp_path / "cache"))
        assert compilation.current_dir() == str(tmp_path / "cache")
        jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()
        compilation.setup("")
        assert compilation.current_dir() == ""
    finally:
        compilation.setup(before)


def test_config_json_without_the_field_gets_the_default():
    raw = synthetic.get_config().to_dict()
    assert raw["train"].pop("compile_cache") == compilation.default_dir()
    filled = config_lib.validate_config(raw)
    assert filled.train.compile_cache == compilation.default_dir()
    raw["train"]["compile_cache"] = 3
    with pytest.raises(config_lib.ConfigError, match="train.compile_cache"):
        config_lib.validate_config(raw)


def test_announced_step_compiles_once_per_signature():
    lines = []
    step = compilation.AnnouncedStep(jax.jit(lambda x: 2 * x), "toy step", lines.append)
    assert float(step(jnp.ones(3)).sum()) == 6.0
    step(jnp.zeros(3))
    assert len(step.programs) == 1 and lines[0] == "compiling the toy step..."
    assert lines[1].startswith("toy step ") and lines[1].endswith(" s")
    step(jnp.ones((2, 3)))
    assert len(step.programs) == 2 and len(lines) == 4 and step.seconds > 0


# Trains the tiny model for 2 epochs; with "stop", exits after saving epoch 1.
RUN = """
import sys
from pathlib import Path
from lmttm_jax import train
from lmttm_jax.workdir import Checkpoints
from tests.tiny import tiny_config
root, workdir, cache, stop = sys.argv[1:]
config = tiny_config(Path(root), epochs=2, eval_batch_size=16)
config.train.compile_cache = cache
save = Checkpoints.save
def save_then_stop(self, kind, epoch, state, meta):
    save(self, kind, epoch, state, meta)
    if stop == "stop" and kind == "latest":
        sys.exit(3)
Checkpoints.save = save_then_stop
train.train_and_evaluate(config, workdir)
"""


@pytest.mark.slow
def test_resumed_run_loads_its_train_step_from_the_cache(tmp_path):
    root = tmp_path / "data"
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 32, "val": 16, "test": 16}
    )
    args = [sys.executable, "-c", RUN, str(root), str(tmp_path / "run"), str(tmp_path / "cache")]

    def run(stop: str) -> subprocess.CompletedProcess:
        return subprocess.run(args + [stop], cwd=REPO, capture_output=True, text=True, timeout=600)

    first = run("stop")
    assert first.returncode == 3, first.stderr[-2000:]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "  # log lines start with date and time
    said_while = rf"({stamp}(note: |still compiling the train step, ).*\n)*"  # a slow machine
    announced = rf"{stamp}compiling the train step\.\.\.\n{said_while}{stamp}train step compiled in"
    assert re.search(announced, first.stdout)
    assert any((tmp_path / "cache").glob("jit_train_step*"))
    resumed = run("go")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out = resumed.stdout
    assert "resuming from" in out
    assert "train step loaded from the compile cache" in out
    assert "eval step loaded from the compile cache" in out
    assert out.count("compiling the") == 2  # train and eval step, once each


# A function that takes about a second to compile, the same in every process.
SLOW_TO_COMPILE = """
import jax, jax.numpy as jnp
def chain(x):
    for _ in range(150):
        x = jnp.tanh(x @ x.T) + jnp.sort(x, axis=0)
    return x
"""
COMPILE_IN_CACHE = (
    "import sys\n"
    "from lmttm_jax import compilation\n"
    f"{SLOW_TO_COMPILE}\n"
    "compilation.setup(sys.argv[1])\n"
    "step = compilation.AnnouncedStep(jax.jit(chain), 'chain', lambda m: print(m, flush=True))\n"
    "step(jnp.ones((8, 8))).block_until_ready()\n"
)


def test_processes_sharing_the_cache_compile_a_program_once(tmp_path):
    cache = tmp_path / "cache"
    functions: dict = {}
    exec(SLOW_TO_COMPILE, functions)
    text = jax.jit(functions["chain"]).lower(jnp.ones((8, 8))).as_text()
    lock = compilation.lock_path(str(cache), text)
    lock.parent.mkdir(parents=True)
    command = [sys.executable, "-c", COMPILE_IN_CACHE, str(cache)]
    with open(lock, "a") as held:  # as if a third process were compiling it
        fcntl.flock(held, fcntl.LOCK_EX)
        procs = [
            subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)
        ]
        for proc in procs:  # both wait for the lock
            while "waiting for another process" not in proc.stdout.readline():
                assert proc.poll() is None
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    done = sorted(
        line.split(" in ")[0] for out in outputs for line in out.splitlines()
        if line.startswith("chain ")
    )  # fmt: skip
    assert done == ["chain compiled", "chain loaded from the compile cache"], outputs
