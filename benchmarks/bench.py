"""Benchmark of the train and eval steps that training runs: compile time (first and
from the persistent cache), throughput, FLOPs, memory, and the AdrenalMNIST3D epoch.

  python -m benchmarks.bench [--config=configs/adrenal.py[:variant]] [--batch_size=32]
      [--batch_size_64=2] [--steps=10] [--cases=lmttm,ttm,lmttm64,lmttm128,tiny,cpu]
      [--kernels=cpu,flax] [--largest_batch] [--host_devices=0,2]
      [--remat_batch_size=64] [--json=bench.json]

(from the repository root). Every case runs once per `--kernels` setting
(`model.kernels`: our CPU kernels, `cpu`, and Flax's own layers, `flax`), and the
second's samples/s are printed as a ratio of the first's. XLA's instruction set can be
capped for the whole run, e.g. `XLA_FLAGS=--xla_cpu_max_isa=AVX2` (the header prints
the `XLA_FLAGS` in force): most laptops have no AVX-512.

Every case times `train.Steps` built from the config (by default the AdrenalMNIST3D
recipe: its augmentation, gradient clipping, compute dtype and the `data` mesh) on
random volumes: LMTTM at the config's width on 28^3 (`lmttm`), TTM at the same width
(`ttm`), LMTTM on 64^3 with patch 4 (`lmttm64`), LMTTM at dim 128 with 4 units of 32
tokens (`lmttm128`), and the models of the `scale=tiny` and `scale=cpu` variants
(`tiny`, `cpu`). For each it prints the train step's compile seconds in a fresh
persistent cache and again from that cache (in-memory caches cleared), the median
and spread of the step time over `--steps` timed steps after one warm-up step,
samples/s for training and inference (the eval step), the time of one AdrenalMNIST3D
epoch (1188 training samples, `1188 // batch` steps), the model FLOPs per sample of
forward+backward (counted from the program: every matmul and convolution, each scan
body times its trip count) as executed and for the reference (direct) formulation,
the achieved FLOP/s of both as a fraction of the float32 matmul peak measured in the
same run, the page faults per train step, XLA's scratch memory of the train step and
the process peak (host RSS on CPU, device memory on accelerators). It runs itself
again with glibc's huge pages for XLA's buffers where they apply (`huge_pages`; its
first line says whether they do).

`--largest_batch` also doubles each case's batch until the step runs out of memory
and reports the largest that ran. `--host_devices=0,N` runs everything once per
setting in a fresh process (0: one device using every core; N: the CPU split into N
devices, `parallel.use_host_devices`) and prints the speedup.
With `--remat_batch_size`, it also runs one 64^3 train step without and with
`model.remat`, each in a fresh process, and prints XLA's scratch memory and the
process's peak RSS of both.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lmttm_jax import compilation, huge_pages, parallel, train
from lmttm_jax import config as config_lib
from lmttm_jax.models import build_model

ADRENAL_TRAIN_SAMPLES = 1188  # AdrenalMNIST3D's training split
NUM_CLASSES = 2

# ----------------------------------------------------------------------------- FLOPs


def _dot_flops(eqn: Any) -> int:
    (lhs_contract, _), (lhs_batch, _) = eqn.params["dimension_numbers"]
    lhs, rhs = (v.aval.shape for v in eqn.invars)
    out = eqn.outvars[0].aval.shape
    contracted = int(np.prod([lhs[d] for d in lhs_contract]))
    return 2 * int(np.prod(out)) * contracted


def _conv_flops(eqn: Any) -> int:
    rhs = eqn.invars[1].aval.shape  # kernel: spatial..., in/groups, out (any layout)
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    kernel_out = rhs[dn.rhs_spec[0]]
    per_output = int(np.prod(rhs)) // kernel_out  # spatial x in/groups
    return 2 * int(np.prod(out)) * per_output


def jaxpr_flops(jaxpr: Any) -> int:
    """Matmul + convolution FLOPs of a (closed) jaxpr, loop bodies times trip count."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        elif name == "while":
            raise ValueError("a while loop without a static trip count: FLOPs unknown")
        else:
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                total += jaxpr_flops(sub)
    return total


# ----------------------------------------------------------------------------- timing


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matmul FLOP/s of the default device (best of `repeats`)."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_memory_bytes() -> int:
    """Device peak where the backend reports it, else the host's peak RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def grad_flops(model: Any, params: Any, x: jax.Array) -> float:
    """Matmul + convolution FLOPs per sample of one forward+backward pass."""
    jaxpr = jax.make_jaxpr(
        jax.grad(
            lambda p: model.apply({"params": p}, x, True, rngs={"dropout": jax.random.key(0)})[
                "logits"
            ].sum()
        )
    )(params)
    return jaxpr_flops(jaxpr) / x.shape[0]


class Prepared:
    """`train.Steps` of a config at `batch_size`, a fresh train state on the mesh and a
    random uint8 batch of `config.data.size`^3 volumes."""

    def __init__(self, config: ml_collections.ConfigDict, batch_size: int):
        self.config = with_fields(config, train={"batch_size": batch_size})
        self.mesh = parallel.make_mesh()
        config_lib.check_batch_sizes(self.config, self.mesh.size)
        size = config.data.size
        self.model = build_model(config.model, NUM_CLASSES, size)
        self.steps = train.Steps(self.config, self.mesh, self.model)
        steps_per_epoch = max(ADRENAL_TRAIN_SAMPLES // batch_size, 1)
        state = train.create_train_state(
            self.config, self.model, jax.random.key(2), steps_per_epoch
        )
        self.state = jax.device_put(state, self.steps.shardings.replicated)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch_size, size, size, size), dtype=np.uint8)
        labels = rng.integers(0, NUM_CLASSES, (batch_size,)).astype(np.int32)
        self.batch = self.steps.put_batch({"image": images, "label": labels})
        self.rng = jax.random.key(3)

    def new_train_step(self) -> compilation.AnnouncedStep:
        """The train step of a fresh `train.Steps` (nothing compiled yet), silent."""
        step = train.Steps(self.config, self.mesh, self.model).train
        step.log = lambda message: None
        return step


def compile_first_and_cached(prepared: Prepared) -> tuple[Any, dict[str, Any]]:
    """Compiles the train step in a fresh persistent cache, then again with JAX's
    in-memory caches cleared (as a new process would): the program and both times."""
    previous = compilation.current_dir()
    args = (prepared.state, prepared.batch, prepared.rng)
    with tempfile.TemporaryDirectory(prefix="lmttm_jax_bench_cache_") as cache:
        compilation.setup(cache)
        try:
            first = prepared.new_train_step()
            program = first.compile(*args)
            jax.clear_caches()
            again = prepared.new_train_step()
            again.compile(*args)
        finally:
            compilation.setup(previous)
    return program, {
        "compile_s": first.seconds,
        "compile_cached_s": again.seconds,
        "compile_cache_hit": again.from_cache[0],
    }


def time_train_steps(prepared: Prepared, program: Any, steps: int) -> tuple[list[float], float]:
    """Seconds of `steps` train steps after one warm-up step (state donated), and the
    page faults per timed step."""
    state, batch, rng = prepared.state, prepared.batch, prepared.rng
    state, loss = program(state, batch, rng)
    loss.block_until_ready()
    times = []
    faults = _page_faults()
    for _ in range(steps):
        start = time.perf_counter()
        state, loss = program(state, batch, rng)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    prepared.state = state
    return times, (_page_faults() - faults) / max(steps, 1)


def _page_faults() -> int:
    """This process's minor page faults so far (memory mapped in by the kernel)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_eval_steps(prepared: Prepared, repeats: int = 10) -> float:
    """Median seconds of the eval step on the batch (compiled first)."""
    params = train.inference_params(prepared.state)
    program = prepared.steps.eval.jitted.lower(params, prepared.batch).compile()
    jax.block_until_ready(program(params, prepared.batch))
    times = [
        _timed(lambda: jax.block_until_ready(program(params, prepared.batch)))
        for _ in range(repeats)
    ]
    return float(np.median(times))


def bench_case(
    config: ml_collections.ConfigDict, batch_size: int, steps: int, count_flops: bool = True
) -> dict[str, Any]:
    """Times one config's train and eval steps on random volumes at `batch_size`.

    FLOPs are counted twice: as executed, and for the reference (direct)
    formulation of the same model with Flax's layers (`model.kernels="flax"`), whose
    count does not depend on how the step is computed.
    """
    prepared = Prepared(config, batch_size)
    size = config.data.size
    row: dict[str, Any] = {"batch_size": batch_size, "input_size": size}
    row["devices"] = prepared.mesh.size
    row["compute_dtype"] = config.train.compute_dtype
    row["kernels"] = config.model.kernels
    if count_flops:
        x = jnp.zeros((batch_size, size, size, size, 1))
        reference = build_model(with_fields(config.model, kernels="flax"), NUM_CLASSES, size)
        row["flops_per_sample_fwd_bwd"] = grad_flops(prepared.model, prepared.state.params, x)
        row["reference_flops_per_sample_fwd_bwd"] = grad_flops(reference, prepared.state.params, x)
    program, compile_times = compile_first_and_cached(prepared)
    row.update(compile_times)
    row["xla_temp_bytes"] = _temp_bytes(program)
    times, faults_per_step = time_train_steps(prepared, program, steps)
    median = float(np.median(times))
    row["step_s_median"] = median
    row["step_s_min"] = float(np.min(times))
    row["step_s_max"] = float(np.max(times))
    row["page_faults_per_step"] = faults_per_step
    row["train_samples_per_s"] = batch_size / median
    row["adrenal_epoch_s"] = (ADRENAL_TRAIN_SAMPLES // batch_size) * median
    row["infer_samples_per_s"] = batch_size / time_eval_steps(prepared)
    if count_flops:
        row["achieved_flops_per_s"] = row["flops_per_sample_fwd_bwd"] * batch_size / median
        row["reference_flops_per_s"] = (
            row["reference_flops_per_sample_fwd_bwd"] * batch_size / median
        )
    row["peak_memory_bytes"] = peak_memory_bytes()
    return row


def is_out_of_memory(err: Exception) -> bool:
    """XLA's out-of-memory errors (allocation or compile-time), on any backend."""
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def largest_batch(
    config: ml_collections.ConfigDict,
    start: int,
    report: Any = None,
    steps: int = 2,
    limit: int = 1 << 16,
) -> dict[str, Any]:
    """Doubles the batch from `start` until the train step runs out of memory (or
    reaches `limit`); the largest batch that ran, with its figures. `report(best)` is
    called after each batch that ran."""
    best: dict[str, Any] = {"batch_size": None}
    batch = start
    while batch <= limit:
        try:
            row = bench_case(config, batch, steps, count_flops=False)
        except Exception as err:  # noqa: BLE001 - only out-of-memory ends the search
            if not is_out_of_memory(err):
                raise
            best["out_of_memory_at"] = batch
            break
        best = {"batch_size": batch, "row": row}
        print(
            f"  batch {batch}: train {row['train_samples_per_s']:.1f}/s, "
            f"infer {row['infer_samples_per_s']:.1f}/s",
            flush=True,
        )
        if report is not None:
            report(best)
        batch *= 2
        jax.clear_caches()
    return best


def _temp_bytes(compiled: Any) -> int:
    """XLA's own figure for a compiled program's scratch memory (activations)."""
    return int(compiled.memory_analysis().temp_size_in_bytes)


def remat_step(config: ml_collections.ConfigDict, batch_size: int) -> dict:
    """Compiles and runs one train step: XLA's scratch memory and the process's peak
    RSS (run it in a fresh process for a figure of this step alone)."""
    prepared = Prepared(config, batch_size)
    program = prepared.steps.train.jitted.lower(
        prepared.state, prepared.batch, prepared.rng
    ).compile()
    start = time.perf_counter()
    _, loss = program(prepared.state, prepared.batch, prepared.rng)
    loss.block_until_ready()
    return {
        "remat": bool(config.model.remat),
        "xla_temp_bytes": _temp_bytes(program),
        "step_s": time.perf_counter() - start,
        "peak_rss_bytes": _own_peak_rss(),
    }


def _own_peak_rss() -> int:
    """This process's peak RSS since it started (Linux `VmHWM`: unlike `ru_maxrss`,
    not inherited from the parent across fork and exec), else `ru_maxrss`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _config_arg() -> str:
    return f"--config={config_flags.get_config_filename(FLAGS['config'])}"


def remat_saving(batch_size: int) -> dict[str, dict]:
    """`remat_step` at 64^3 without and with `model.remat`, each in its own process."""
    out = {}
    for remat in ("off", "on"):
        cmd = [sys.executable, "-m", "benchmarks.bench", f"--remat_child={remat}"]
        cmd += [f"--remat_batch_size={batch_size}", _config_arg()]
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        out[remat] = json.loads(lines.strip().splitlines()[-1])
    return out


# ----------------------------------------------------------------------------- cases

# case -> (model name, input size, overrides of the model fields, or a scale variant)
CASES: dict[str, tuple[str, int, dict[str, Any] | str]] = {
    "lmttm": ("lmttm", 28, {}),
    "ttm": ("ttm", 28, {}),
    "lmttm64": ("lmttm", 64, {"patch_size": 4}),
    # A CPU-sized width: dim 128, 4 units of 32 tokens.
    "lmttm128": (
        "lmttm",
        28,
        {"dim": 128, "memory_tokens": 32, "tl_hidden_dim": 128, "mlp_dim": 384},
    ),
    "tiny": ("lmttm", 28, "tiny"),  # the `scale=tiny` widths (the CPU recipe's)
    "cpu": ("lmttm", 28, "cpu"),  # the `scale=cpu` widths
}


def case_config(config: ml_collections.ConfigDict, case: str) -> ml_collections.ConfigDict:
    """`config` with the case's model and input size."""
    if case not in CASES:
        raise app.UsageError(f"--cases: unknown case {case!r}; expected one of {list(CASES)}")
    name, size, model = CASES[case]
    if isinstance(model, str):
        fields = {**config.model.to_dict(), **config_lib.SCALES[model]}
    else:
        fields = {**config.model.to_dict(), **model}
    fields["name"] = name
    return with_fields(config, data={"size": size}, model=fields)


def with_fields(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
    """A copy of `config` with `fields` replaced (a dict value updates a section)."""
    out = ml_collections.ConfigDict(config.to_dict())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(out.get(key), ml_collections.ConfigDict):
            out[key].update(value)
        else:
            out[key] = value
    return out


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", "configs/adrenal.py", "Config whose train step and model are timed."
)
flags.DEFINE_integer("batch_size", 32, "Batch size of the 28^3 cases.")
flags.DEFINE_integer("batch_size_64", 2, "Batch size of the 64^3 case.")
flags.DEFINE_integer("steps", 10, "Timed train steps per case (after one warm-up step).")
flags.DEFINE_list("cases", ["lmttm", "ttm", "lmttm64"], f"Cases among {list(CASES)}.")
flags.DEFINE_list("kernels", ["cpu", "flax"], "model.kernels settings, each case under each.")
flags.DEFINE_bool("largest_batch", False, "Also double each case's batch until out of memory.")
flags.DEFINE_list(
    "host_devices",
    [],
    "Compare CPU device settings, each in a fresh process: 0 = one device on every core, "
    "N = N host devices (e.g. 0,2).",
)
flags.DEFINE_integer(
    "remat_batch_size", 0, "If > 0: XLA memory of the 64^3 train step with and without remat."
)
flags.DEFINE_string("json", None, "Also write the results to this JSON file (after each case).")
flags.DEFINE_enum("remat_child", None, ["on", "off"], "Internal: one 64^3 step, as JSON.")
flags.DEFINE_integer("host_devices_child", None, "Internal: run with this device setting.")


def format_row(case: str, row: dict[str, Any]) -> str:
    text = (
        f"{case:8s} {row['kernels']:4s} {row['input_size']}^3 b{row['batch_size']:<3d} "
        f"{row['compute_dtype']} "
        f"x{row['devices']}  compile {row['compile_s']:5.1f} s (cached "
        f"{row['compile_cached_s']:4.1f} s)  step {row['step_s_median']:.3f} s "
        f"[{row['step_s_min']:.3f}, {row['step_s_max']:.3f}]  train "
        f"{row['train_samples_per_s']:6.2f}/s  infer {row['infer_samples_per_s']:6.2f}/s  "
        f"AdrenalMNIST3D epoch {row['adrenal_epoch_s']:.1f} s"
    )
    if "flops_per_sample_fwd_bwd" in row:
        text += (
            f"  GFLOP/sample {row['flops_per_sample_fwd_bwd'] / 1e9:.2f} (ref "
            f"{row['reference_flops_per_sample_fwd_bwd'] / 1e9:.2f})  peak fraction "
            f"{row['fraction_of_peak']:.1%} (ref {row['reference_fraction_of_peak']:.1%})"
        )
    return (
        f"{text}  page faults/step {row['page_faults_per_step']:,.0f}  XLA temp "
        f"{row['xla_temp_bytes'] / 2**20:,.0f} MiB  process peak "
        f"{row['peak_memory_bytes'] / 2**20:,.0f} MiB  ({row['case_wall_s']:.0f} s)"
    )


def run_cases(result: dict[str, Any]) -> None:
    """Benchmarks every case of `--cases` under every `--kernels` setting into
    `result["cases"][case][kernels]` (written as it goes)."""
    for case in FLAGS.cases:
        result["cases"][case] = {}
        for kernels in FLAGS.kernels:
            config = with_fields(case_config(FLAGS.config, case), model={"kernels": kernels})
            run_case(result, case, config)
        rows = result["cases"][case]
        first, *others = FLAGS.kernels
        for other in others:
            a, b = rows[first], rows[other]
            print(
                f"{case}: kernels {other} / {first}: train x"
                f"{b['train_samples_per_s'] / a['train_samples_per_s']:.2f}, infer x"
                f"{b['infer_samples_per_s'] / a['infer_samples_per_s']:.2f}",
                flush=True,
            )


def run_case(result: dict[str, Any], case: str, config: ml_collections.ConfigDict) -> None:
    """One case under one kernels setting."""
    batch = FLAGS.batch_size_64 if config.data.size == 64 else FLAGS.batch_size
    start = time.perf_counter()
    row = bench_case(config, batch, FLAGS.steps)
    row["case_wall_s"] = time.perf_counter() - start
    peak = result["matmul_peak_flops"] * max(result["host_devices"], 1)  # all cores
    row["fraction_of_peak"] = row["achieved_flops_per_s"] / peak
    row["reference_fraction_of_peak"] = row["reference_flops_per_s"] / peak
    result["cases"][case][config.model.kernels] = row
    print(format_row(case, row), flush=True)
    write_json(result)
    if FLAGS.largest_batch:

        def report(best: dict[str, Any]) -> None:
            row["largest_batch"] = best
            write_json(result)

        report(largest_batch(config, 2 * batch, report))


def write_json(result: dict[str, Any]) -> None:
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=1)


def compare_host_devices(settings: list[str]) -> dict[str, Any]:
    """Runs this benchmark once per `--host_devices` setting, each in a fresh process
    with the same other flags; prints train and inference samples/s side by side."""
    forwarded = [
        a for a in sys.argv[1:] if not a.startswith(("--host_devices", "--json", "--remat"))
    ]
    results = {}
    for setting in settings:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, "-m", "benchmarks.bench", *forwarded]
            cmd += [f"--host_devices_child={int(setting)}", f"--json={out.name}"]
            print(f"host devices {setting}: {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=True)
            with open(out.name) as f:
                results[setting] = json.load(f)
    base = settings[0]
    for case in FLAGS.cases:
        for setting in settings[1:]:
            kernels = FLAGS.kernels[0]
            a = results[base]["cases"][case][kernels]
            b = results[setting]["cases"][case][kernels]
            print(
                f"{case}: host devices {setting} vs {base}: train x"
                f"{b['train_samples_per_s'] / a['train_samples_per_s']:.2f}, infer x"
                f"{b['infer_samples_per_s'] / a['infer_samples_per_s']:.2f}",
                flush=True,
            )
    return {"host_devices": results}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)  # JAX logs every change of cache folder
    if FLAGS.host_devices_child is not None:
        parallel.use_host_devices(FLAGS.host_devices_child)
    if FLAGS.remat_child:
        config = case_config(FLAGS.config, "lmttm64")
        config.model.remat = FLAGS.remat_child == "on"
        print(json.dumps(remat_step(config, FLAGS.remat_batch_size)))
        return
    if FLAGS.host_devices:
        result = compare_host_devices(FLAGS.host_devices)
        write_json(result)
        return
    peak = matmul_peak()
    device = jax.devices()[0]
    pages = huge_pages.describe()
    print(
        f"device: {device.device_kind} x{jax.device_count()}  "
        f"measured f32 matmul peak: {peak / 1e9:.1f} GFLOP/s  {pages}  "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}",
        flush=True,
    )
    result = {
        "device": device.device_kind,
        "huge_pages": pages,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "device_count": jax.device_count(),
        "host_devices": FLAGS.host_devices_child or 0,
        "matmul_peak_flops": peak,
        "cases": {},
    }
    run_cases(result)
    if FLAGS.remat_batch_size > 0:
        saving = remat_saving(FLAGS.remat_batch_size)
        result["remat_64"] = {"batch_size": FLAGS.remat_batch_size, **saving}
        for remat, row in saving.items():
            print(
                f"64^3 batch {FLAGS.remat_batch_size} remat {remat:3s}: XLA temp "
                f"{row['xla_temp_bytes'] / 2**20:,.0f} MiB, process peak RSS "
                f"{row['peak_rss_bytes'] / 2**20:,.0f} MiB, one step {row['step_s']:.1f} s",
                flush=True,
            )
    print(json.dumps(result, indent=1))
    write_json(result)


if __name__ == "__main__":
    huge_pages.restart()  # before anything runs: glibc reads it at start
    app.run(main)
