"""Benchmark: compile time, train/inference throughput, FLOPs, peak memory.

  python -m lmttm_jax.bench [--config=configs/base.py[:variant]] [--batch_size=32]
      [--steps=10] [--cases=lmttm,ttm,lmttm64] [--json=bench.json]

For each case (LMTTM at the config's width on 28^3, TTM at the same width, LMTTM on
64^3 with patch 4) it prints the train step's compile time, the median and spread of
the step time over `--steps` timed steps after one warm-up step, samples/s for
training and inference, the model FLOPs per sample of forward+backward (counted from
the program: every matmul and convolution, with each scan body multiplied by its
trip count), the achieved FLOP/s as a fraction of the float32 matmul peak measured in
the same run, and the peak memory (host RSS on CPU, device memory on accelerators).
"""

import json
import resource
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


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
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


def bench_case(
    model_config: ml_collections.ConfigDict, size: int, batch_size: int, steps: int
) -> dict[str, Any]:
    """Times one model's train and inference steps on random `size`^3 volumes."""
    model = build_model(model_config, 2, size)
    x = jax.random.uniform(jax.random.key(0), (batch_size, size, size, size, 1))
    y = jax.random.randint(jax.random.key(1), (batch_size,), 0, 2)
    params = jax.jit(model.init)(jax.random.key(2), x[:1])["params"]
    tx = optax.adamw(1e-4)
    state = train.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    def step(state, x, y, rng):
        def loss_fn(p):
            out = model.apply({"params": p}, x, True, rngs={"dropout": rng})
            return optax.softmax_cross_entropy_with_integer_labels(out["logits"], y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    grad_jaxpr = jax.make_jaxpr(
        jax.grad(
            lambda p: model.apply({"params": p}, x, True, rngs={"dropout": jax.random.key(0)})[
                "logits"
            ].sum()
        )
    )(params)
    flops = jaxpr_flops(grad_jaxpr) / batch_size

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, x, y, jax.random.key(3)).compile()
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
    infer(state.params, x).block_until_ready()
    infer_times = [_timed(lambda: infer(state.params, x).block_until_ready()) for _ in range(5)]
    median = float(np.median(times))
    return {
        "compile_s": compile_s,
        "step_s_median": median,
        "step_s_min": float(np.min(times)),
        "step_s_max": float(np.max(times)),
        "train_samples_per_s": batch_size / median,
        "infer_samples_per_s": batch_size / float(np.median(infer_times)),
        "flops_per_sample_fwd_bwd": flops,
        "achieved_flops_per_s": flops * batch_size / median,
        "peak_memory_bytes": peak_memory_bytes(),
    }


CASES = {
    "lmttm": ("lmttm", 28),
    "ttm": ("ttm", 28),
    "lmttm64": ("lmttm", 64),
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/base.py", "Config whose model is timed.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("steps", 10, "Timed train steps per case (after one warm-up step).")
flags.DEFINE_list("cases", list(CASES), f"Cases among {list(CASES)}.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")


def main(argv: list[str]) -> None:
    del argv
    peak = matmul_peak()
    device = jax.devices()[0]
    print(
        f"device: {device.device_kind} x{jax.device_count()}  "
        f"measured f32 matmul peak: {peak / 1e9:.1f} GFLOP/s"
    )
    rows = {}
    for case in FLAGS.cases:
        name, size = CASES[case]
        model_config = ml_collections.ConfigDict(FLAGS.config.model.to_dict())
        model_config.name = name
        if size == 64:
            model_config.patch_size = 4
        row = bench_case(model_config, size, FLAGS.batch_size, FLAGS.steps)
        row["fraction_of_peak"] = row["achieved_flops_per_s"] / peak
        rows[case] = row
        print(
            f"{case:8s} compile {row['compile_s']:6.1f} s  step {row['step_s_median']:.3f} s "
            f"[{row['step_s_min']:.3f}, {row['step_s_max']:.3f}]  train "
            f"{row['train_samples_per_s']:7.2f}/s  infer {row['infer_samples_per_s']:7.2f}/s  "
            f"{row['flops_per_sample_fwd_bwd'] / 1e9:6.2f} GFLOP/sample  "
            f"{row['fraction_of_peak']:5.1%} of peak  "
            f"peak mem {row['peak_memory_bytes'] / 2**20:,.0f} MiB",
            flush=True,
        )
    result = {
        "device": device.device_kind,
        "matmul_peak_flops": peak,
        "batch_size": FLAGS.batch_size,
        "cases": rows,
    }
    print(json.dumps(result, indent=1))
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
