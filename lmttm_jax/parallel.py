"""Devices and processes: the `data` mesh, `jax.distributed`, global batches.

One program runs on every process (JAX's multi-controller model). Each process
holds the whole dataset on the host and, from every global batch (the same on all
processes: its order depends on the seed alone), transfers only the rows that
belong to its own devices.
"""

import os
from collections.abc import MutableMapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def cluster_environment() -> str | None:
    """The multi-host environment `jax.distributed.initialize()` can read, if any."""
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
        return "SLURM"
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return "TPU pod"
    return None


def initialize(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Starts `jax.distributed` from explicit flags, or from SLURM / a TPU pod (with
    neither: nothing, a single process). Must run before anything touches the devices;
    CPU collectives use gloo."""
    if coordinator_address is None and (num_processes is not None or process_id is not None):
        raise ValueError("--num_processes/--process_id need --coordinator_address")
    if coordinator_address is None and cluster_environment() is None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


# XLA's CPU option for one thread per device in its Eigen operations. The library
# matmul fusions still share the process's thread pool, which XLA sizes by the cores
# the process may run on (`child.pin_to_core` makes a child single-threaded).
ONE_THREAD_PER_DEVICE = "--xla_cpu_multi_thread_eigen=false"


def one_thread_per_device(environ: MutableMapping[str, str]) -> None:
    """Adds `ONE_THREAD_PER_DEVICE` to `environ`'s `XLA_FLAGS`, the user's kept."""
    flags = environ.get("XLA_FLAGS", "")
    if ONE_THREAD_PER_DEVICE not in flags:
        environ["XLA_FLAGS"] = f"{flags} {ONE_THREAD_PER_DEVICE}".strip()


def use_host_devices(count: int) -> None:
    """Splits this host's CPU into `count` JAX devices, so the `data` mesh runs a share
    of every batch on each (0 keeps one device using every core). Must run before
    anything touches the devices."""
    if count < 0:
        raise ValueError(f"--host_devices={count}: expected 0 (off) or a number of devices")
    if count > 0:
        one_thread_per_device(os.environ)
        jax.config.update("jax_num_cpu_devices", count)


def is_main_process() -> bool:
    """Process 0 prints progress and writes the result files."""
    return jax.process_index() == 0


def make_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, axis `data`."""
    return Mesh(np.asarray(jax.devices()), ("data",))


class Shardings:
    """Replicated (state, scalars) and batch-split (`data` axis) shardings of a mesh."""

    def __init__(self, mesh: Mesh):
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.batch = NamedSharding(mesh, PartitionSpec("data"))

    def global_batch(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """Host arrays of the global batch -> global arrays split along `data`; each
        process transfers only the rows of its own devices."""
        return {
            key: jax.make_array_from_callback(value.shape, self.batch, lambda idx, v=value: v[idx])
            for key, value in arrays.items()
        }
