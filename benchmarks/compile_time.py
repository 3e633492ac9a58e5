"""Parameter counts and compile times of the forward+backward step, T = 9 and T = 21.

  python benchmarks/compile_time.py [--config=configs/base.py[:variant]]

T is set through the depth of the input volume (D = 3T with patch 3, H = W = 28), so
the token count per step stays 81. The scan keeps the program size constant in T;
the printed HLO size shows it.
"""

import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags
from ml_collections import config_flags

from lmttm_jax.models import build_model

config_flags.DEFINE_config_file("config", "configs/base.py", "Config (model fields are used).")
flags.DEFINE_integer("batch_size", 32, "Batch size of the compiled step.")
flags.DEFINE_integer("num_classes", 2, "Classifier outputs.")
FLAGS = flags.FLAGS


def grad_step(model):
    def loss(params, x, y, rng):
        out = model.apply({"params": params}, x, True, rngs={"dropout": rng})
        return optax.softmax_cross_entropy_with_integer_labels(out["logits"], y).mean()

    return jax.jit(jax.grad(loss))


def step_loops(text: str) -> int:
    """`while` ops outside the RNG's own functions (threefry rounds are a loop too)."""
    funcs = text.split("func.func")[1:]
    return sum(f.count("stablehlo.while") for f in funcs if "@threefry" not in f.split("(")[0])


def main(_):
    config = FLAGS.config
    for name in ("lmttm", "ttm"):
        config.model.name = name
        model = build_model(config.model, FLAGS.num_classes, config.data.size)
        x = jnp.zeros((1, 28, 28, 28, 1))
        params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
        count = sum(p.size for p in jax.tree.leaves(params))
        print(
            f"{name}: {count:,} parameters (dim {config.model.dim}, "
            f"patch {config.model.patch_size}, {FLAGS.num_classes} classes)"
        )
        for steps in (9, 21):
            depth = steps * config.model.patch_size
            xs = jax.ShapeDtypeStruct((FLAGS.batch_size, depth, 28, 28, 1), jnp.float32)
            ys = jax.ShapeDtypeStruct((FLAGS.batch_size,), jnp.int32)
            ps = jax.eval_shape(model.init, jax.random.key(0), xs)["params"]
            start = time.perf_counter()
            lowered = grad_step(model).lower(ps, xs, ys, jax.random.key(0))
            lower_s = time.perf_counter() - start
            start = time.perf_counter()
            lowered.compile()
            compile_s = time.perf_counter() - start
            text = lowered.as_text()
            print(
                f"  T={steps:2d}: lower {lower_s:5.2f} s  compile {compile_s:5.2f} s  "
                f"StableHLO {len(text):,} chars, {step_loops(text)} scan loops "
                f"(forward+backward, batch {FLAGS.batch_size})"
            )


if __name__ == "__main__":
    app.run(main)
