"""Benchmark: compile time, train/inference throughput, FLOPs, memory.

  python -m lmttm_jax.bench [--config=configs/base.py[:variant]] [--batch_size=32]
      [--batch_size_64=2] [--steps=10] [--cases=lmttm,ttm,lmttm64,lmttm128]
      [--remat_batch_size=64] [--json=bench.json]

For each case (by default LMTTM at the config's width on 28^3, TTM at the same
width, LMTTM on 64^3 with patch 4; `lmttm128` is LMTTM at dim 128 with 4 units of 32
tokens) it prints the train step's compile time, the median and spread of the step
time over `--steps` timed steps after one warm-up step, samples/s for training and
inference, the model FLOPs per sample of forward+backward (counted from the program:
every matmul and convolution, each scan body times its trip count) as executed and
for the reference (direct) formulation, the achieved FLOP/s of both as a fraction of
the float32 matmul peak measured in the same run, XLA's scratch memory of the train
step and the process peak (host RSS on CPU, device memory on accelerators). With
`--remat_batch_size`, it also runs one 64^3 train step without and with
`model.remat`, each in a fresh process, and prints XLA's scratch memory and the
process's peak RSS of both.
"""

import json
import resource
import subprocess
import sys
import time
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags
from ml_collections import config_flags

from lmttm_jax import train
from lmttm_jax.models import build_model

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


def _train_step(model: Any):
    def step(state, x, y, rng):
        def loss_fn(p):
            out = model.apply({"params": p}, x, True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(out["logits"], y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    return step


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


def bench_case(
    model_config: ml_collections.ConfigDict, size: int, batch_size: int, steps: int
) -> dict[str, Any]:
    """Times one model's train and inference steps on random `size`^3 volumes.

    FLOPs are counted twice: as executed, and for the reference (direct)
    formulation of the same model (`model.cached=False`), whose count does not
    depend on how the step is computed.
    """
    model, state, x, y = _setup(model_config, size, batch_size)
    reference = build_model(with_fields(model_config, cached=False), 2, size)
    flops = grad_flops(model, state.params, x)
    reference_flops = grad_flops(reference, state.params, x)

    start = time.perf_counter()
    compiled = _compile_step(model, state, x, y)
    compile_s = time.perf_counter() - start
    state, loss = compiled(state, x, y, jax.random.key(3))
    loss.block_until_ready()
    times = []
    for i in range(steps):
        start = time.perf_counter()
        state, loss = compiled(state, x, y, jax.random.key(i))
        loss.block_until_ready()
        times.append(time.perf_counter() - start)

    infer = jax.jit(lambda p, x: model.apply({"params": p}, x)["logits"])
    infer = infer.lower(state.params, x).compile()
    infer_times = [_timed(lambda: infer(state.params, x).block_until_ready()) for _ in range(3)]
    median = float(np.median(times))
    return {
        "batch_size": batch_size,
        "input_size": size,
        "compile_s": compile_s,
        "step_s_median": median,
        "step_s_min": float(np.min(times)),
        "step_s_max": float(np.max(times)),
        "train_samples_per_s": batch_size / median,
        "infer_samples_per_s": batch_size / float(np.median(infer_times)),
        "flops_per_sample_fwd_bwd": flops,
        "reference_flops_per_sample_fwd_bwd": reference_flops,
        "achieved_flops_per_s": flops * batch_size / median,
        "reference_flops_per_s": reference_flops * batch_size / median,
        "xla_temp_bytes": _temp_bytes(compiled),
        "peak_memory_bytes": peak_memory_bytes(),
    }


def _train_state(apply_fn: Any, params: Any) -> train.TrainState:
    return train.TrainState.create(apply_fn=apply_fn, params=params, tx=optax.adamw(1e-4))


def _setup(model_config: ml_collections.ConfigDict, size: int, batch_size: int) -> tuple:
    """The model, a fresh train state and a random batch of `size`^3 volumes."""
    model = build_model(model_config, 2, size)
    x = jax.random.uniform(jax.random.key(0), (batch_size, size, size, size, 1))
    y = jax.random.randint(jax.random.key(1), (batch_size,), 0, 2)
    params = jax.jit(model.init)(jax.random.key(2), x[:1])["params"]
    return model, _train_state(model.apply, params), x, y


def _compile_step(model: Any, state: train.TrainState, x: jax.Array, y: jax.Array) -> Any:
    """The train step compiled ahead of time (state donated)."""
    step = jax.jit(_train_step(model), donate_argnums=0)
    return step.lower(state, x, y, jax.random.key(3)).compile()


def _temp_bytes(compiled: Any) -> int:
    """XLA's own figure for a compiled program's scratch memory (activations)."""
    return int(compiled.memory_analysis().temp_size_in_bytes)


def remat_step(model_config: ml_collections.ConfigDict, size: int, batch_size: int) -> dict:
    """Compiles and runs one train step: XLA's scratch memory and the process's peak
    RSS (run it in a fresh process for a figure of this step alone)."""
    model, state, x, y = _setup(model_config, size, batch_size)
    compiled = _compile_step(model, state, x, y)
    start = time.perf_counter()
    _, loss = compiled(state, x, y, jax.random.key(3))
    loss.block_until_ready()
    return {
        "remat": bool(model_config.remat),
        "xla_temp_bytes": _temp_bytes(compiled),
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


def remat_saving(batch_size: int) -> dict[str, dict]:
    """`remat_step` at 64^3 without and with `model.remat`, each in its own process."""
    out = {}
    for remat in ("off", "on"):
        cmd = [sys.executable, "-m", "lmttm_jax.bench", f"--remat_child={remat}"]
        cmd += [f"--remat_batch_size={batch_size}"]
        cmd += [f"--config={config_flags.get_config_filename(FLAGS['config'])}"]
        lines = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        out[remat] = json.loads(lines.strip().splitlines()[-1])
    return out


# case -> (model, input size, overrides of the config's model fields)
CASES = {
    "lmttm": ("lmttm", 28, {}),
    "ttm": ("ttm", 28, {}),
    "lmttm64": ("lmttm", 64, {"patch_size": 4}),
    # A CPU-sized width: dim 128, 4 units of 32 tokens.
    "lmttm128": (
        "lmttm",
        28,
        {"dim": 128, "memory_tokens": 32, "tl_hidden_dim": 128, "mlp_dim": 384},
    ),
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/base.py", "Config whose model is timed.")
flags.DEFINE_integer("batch_size", 32, "Batch size of the 28^3 cases.")
flags.DEFINE_integer("batch_size_64", 2, "Batch size of the 64^3 case.")
flags.DEFINE_integer("steps", 10, "Timed train steps per case (after one warm-up step).")
flags.DEFINE_list("cases", ["lmttm", "ttm", "lmttm64"], f"Cases among {list(CASES)}.")
flags.DEFINE_integer(
    "remat_batch_size", 0, "If > 0: XLA memory of the 64^3 train step with and without remat."
)
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
flags.DEFINE_enum("remat_child", None, ["on", "off"], "Internal: one 64^3 step, as JSON.")


def with_fields(
    model_config: ml_collections.ConfigDict, **fields: Any
) -> ml_collections.ConfigDict:
    """A copy of `model_config` with `fields` replaced."""
    out = ml_collections.ConfigDict(model_config.to_dict())
    out.update(fields)
    return out


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.remat_child:
        config = with_fields(
            FLAGS.config.model, name="lmttm", patch_size=4, remat=FLAGS.remat_child == "on"
        )
        print(json.dumps(remat_step(config, 64, FLAGS.remat_batch_size)))
        return
    peak = matmul_peak()
    device = jax.devices()[0]
    print(
        f"device: {device.device_kind} x{jax.device_count()}  "
        f"measured f32 matmul peak: {peak / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    rows = {}
    for case in FLAGS.cases:
        name, size, overrides = CASES[case]
        model_config = with_fields(FLAGS.config.model, name=name, **overrides)
        batch = FLAGS.batch_size_64 if size == 64 else FLAGS.batch_size
        start = time.perf_counter()
        row = bench_case(model_config, size, batch, FLAGS.steps)
        row["case_wall_s"] = time.perf_counter() - start
        row["fraction_of_peak"] = row["achieved_flops_per_s"] / peak
        row["reference_fraction_of_peak"] = row["reference_flops_per_s"] / peak
        rows[case] = row
        print(
            f"{case:8s} {size}^3 b{batch:<3d} compile {row['compile_s']:5.1f} s  "
            f"step {row['step_s_median']:.3f} s [{row['step_s_min']:.3f}, "
            f"{row['step_s_max']:.3f}]  train {row['train_samples_per_s']:6.2f}/s  "
            f"infer {row['infer_samples_per_s']:6.2f}/s  GFLOP/sample "
            f"{row['flops_per_sample_fwd_bwd'] / 1e9:.2f} (ref "
            f"{row['reference_flops_per_sample_fwd_bwd'] / 1e9:.2f})  peak fraction "
            f"{row['fraction_of_peak']:.1%} (ref {row['reference_fraction_of_peak']:.1%})  "
            f"XLA temp {row['xla_temp_bytes'] / 2**20:,.0f} MiB  "
            f"process peak {row['peak_memory_bytes'] / 2**20:,.0f} MiB  "
            f"({row['case_wall_s']:.0f} s)",
            flush=True,
        )
    result = {"device": device.device_kind, "matmul_peak_flops": peak, "cases": rows}
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
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
