"""Host-device data parallelism on CPU: the CPU split into N devices."""

import subprocess
import sys
from pathlib import Path

import pytest

from lmttm_jax import parallel

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, jax
from lmttm_jax import parallel
parallel.use_host_devices(3)
print(jax.device_count(), parallel.make_mesh().size, os.environ["XLA_FLAGS"])
"""


def test_use_host_devices_splits_the_cpu_before_start():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    count, mesh, flags = out.stdout.split(maxsplit=2)
    assert count == mesh == "3" and parallel.ONE_THREAD_PER_DEVICE in flags


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="--host_devices=-1"):
        parallel.use_host_devices(-1)
