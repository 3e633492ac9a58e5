"""The cached formulation of the memory recurrence (`kernels="cpu"`, with our CPU
kernels) computes what the direct one (`kernels="flax"`, Flax's layers) computes, with
fewer FLOPs."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.bench import jaxpr_flops
from lmttm_jax.models import LMTTM, TTM, ModelSpec
from lmttm_jax.models.cpu.layers import CPU, broadcast_batch, exact_gelu, shared_add, tanh_gelu
from lmttm_jax.models.cpu.recurrence import CachedRecurrence

SPEC = ModelSpec(
    dim=32,
    num_units=4,
    memory_tokens=8,
    read_tokens=4,
    tl_hidden_dim=24,
    depth=2,
    num_heads=4,
    mlp_dim=64,
    dropout=0.0,
    share_weights=True,
)


class CachedTTM(TTM):
    """TTM in the cached formulation (one unit, one read), which `kernels="cpu"` does
    not pick for TTM: to check that formulation with K = 1 and R = 1."""

    cacheable = True


CACHED = {LMTTM: LMTTM, TTM: CachedTTM}


def pair(cls=LMTTM, **overrides):
    """The same model in its direct and cached formulations, and shared parameters."""
    spec = dataclasses.replace(SPEC, **overrides)
    direct = cls(dataclasses.replace(spec, kernels="flax"), num_classes=3)
    cached = CACHED[cls](dataclasses.replace(spec, kernels="cpu"), num_classes=3)
    assert cached.cached and not direct.cached
    x = jax.random.uniform(jax.random.key(0), (3, 12, 12, 12, 1))  # T = 4 steps
    params = jax.jit(direct.init)(jax.random.key(1), x)["params"]
    return direct, cached, params, x


def grads(model, params, x):
    def loss(p):
        out = model.apply({"params": p}, x, True, rngs={"dropout": jax.random.key(2)})
        return jnp.sum(out["logits"] * jnp.arange(1.0, 4.0))

    return jax.jit(jax.grad(loss))(params)


def assert_trees_close(a, b, rtol=1e-5):
    """Every leaf equal within `rtol` of the largest magnitude in the whole tree."""
    scale = max(float(jnp.abs(leaf).max()) for leaf in jax.tree.leaves(a))
    for path, x in jax.tree_util.tree_flatten_with_path(a)[0]:
        y = b
        for key in path:
            y = y[key.key]
        np.testing.assert_allclose(x, y, atol=rtol * scale, err_msg=jax.tree_util.keystr(path))


def test_both_formulations_make_identical_parameters():
    direct, cached, params, x = pair()
    again = jax.jit(cached.init)(jax.random.key(1), x)["params"]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), params, again))


@pytest.mark.parametrize(
    "cls,overrides",
    [
        (LMTTM, dict()),
        (LMTTM, dict(num_units=1)),
        (
            LMTTM,
            dict(
                num_units=2,
                pos_embed=False,
                memory_init="zeros",
                head="per_step",
                share_weights=False,
            ),
        ),
        (TTM, dict(memory_init="learned", processing="mixer")),
        (LMTTM, dict(form="pytorch", processing="mlp", share_weights=False)),
    ],
    ids=["K4", "K1", "K2-zeros-no-pos-embed-per-step", "TTM-mixer", "pytorch-mlp-unshared"],
)
@pytest.mark.slow
def test_cached_outputs_and_gradients_match_direct(cls, overrides):
    direct, cached, params, x = pair(cls, **overrides)
    a = jax.jit(direct.apply)({"params": params}, x)
    b = jax.jit(cached.apply)({"params": params}, x)
    assert_trees_close(a, b)
    assert_trees_close(grads(direct, params, x), grads(cached, params, x))


@pytest.mark.slow
def test_remat_keeps_gradients_in_both_formulations():
    direct, cached, params, x = pair()
    expected = grads(direct, params, x)
    for model in (direct, cached):
        remat = model.clone(spec=dataclasses.replace(model.spec, remat=True))
        assert_trees_close(expected, grads(remat, params, x))


def test_cached_formulation_executes_fewer_flops():
    direct, cached, params, x = pair(dim=64, tl_hidden_dim=64, memory_tokens=16)

    def count(model):
        return jaxpr_flops(jax.make_jaxpr(lambda p: model.apply({"params": p}, x))(params))

    assert count(cached) < 0.75 * count(direct)


def test_train_mode_dropout_is_random_per_key_and_reproducible():
    _, cached, params, x = pair(dropout=0.3)

    @jax.jit
    def run(key):
        out = cached.apply({"params": params}, x, True, rngs={"dropout": key})
        return out["logits"]

    first = run(jax.random.key(0))
    np.testing.assert_array_equal(first, run(jax.random.key(0)))
    assert not np.allclose(first, run(jax.random.key(1)))
    assert not np.allclose(first, jax.jit(cached.apply)({"params": params}, x)["logits"])


def test_formulation_is_the_one_built():
    direct, cached, params, x = pair()
    out, state = direct.apply({"params": params}, x, mutable=["intermediates"])
    memory = state["intermediates"]["steps"]["memory"][0]
    assert memory.shape == (3, 4, SPEC.num_units, SPEC.memory_tokens, SPEC.dim)
    np.testing.assert_allclose(
        out["logits"], cached.apply({"params": params}, x)["logits"], atol=1e-5
    )
    # Collecting intermediates does not switch formulation: the cached one sows nothing.
    _, state = cached.apply({"params": params}, x, mutable=["intermediates"])
    assert not state.get("intermediates")


def test_cached_formulation_needs_tl_learners():
    spec = dataclasses.replace(SPEC, read="tl_ttm", kernels="cpu")
    assert not LMTTM(spec, num_classes=3).cached  # "cpu" runs the direct one
    steps = CachedRecurrence(spec, LMTTM.reads, LMTTM.process_name, CPU)
    memory = jnp.zeros((1, SPEC.num_units, SPEC.memory_tokens, SPEC.dim))
    tokens = jnp.zeros((1, 2, 4, SPEC.dim))
    with pytest.raises(ValueError, match="read='tl_ttm'"):
        jax.eval_shape(steps.init, jax.random.key(0), memory, tokens, False)


@pytest.mark.parametrize(
    "ours,flax_gelu",
    [(exact_gelu, lambda x: nn.gelu(x, approximate=False)), (tanh_gelu, nn.gelu)],
    ids=["erf", "tanh"],
)
def test_gelu_with_hand_written_derivative_matches_flax(ours, flax_gelu):
    x = jnp.linspace(-8.0, 8.0, 4001)
    np.testing.assert_allclose(ours(x), flax_gelu(x), atol=2e-6)
    np.testing.assert_allclose(
        jax.vmap(jax.grad(ours))(x), jax.vmap(jax.grad(flax_gelu))(x), atol=2e-6
    )


def test_shared_add_and_broadcast_batch_gradients():
    x = jax.random.normal(jax.random.key(0), (4, 3, 5, 6))
    a = jax.random.normal(jax.random.key(1), (5, 6))
    w = jax.random.normal(jax.random.key(2), x.shape)

    def loss(add):
        return lambda x, a: jnp.sum(w * jnp.sin(add(x, a)))

    ours = jax.grad(loss(shared_add), argnums=(0, 1))(x, a)
    plain = jax.grad(loss(jnp.add), argnums=(0, 1))(x, a)
    for g, h in zip(ours, plain, strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-5)

    m = jax.random.normal(jax.random.key(3), (1, 3, 5, 6))
    np.testing.assert_array_equal(broadcast_batch(m, 4), jnp.broadcast_to(m, (4, 3, 5, 6)))
    g = jax.grad(lambda m: jnp.sum(w * broadcast_batch(m, 4)))(m)
    np.testing.assert_allclose(g, w.sum(0, keepdims=True), rtol=1e-5, atol=1e-5)
