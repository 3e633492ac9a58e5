"""`models/cpu/layers.py`'s products: the same values and gradients as jax's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lmttm_jax.models.cpu.layers import dot_general, matmul


def _arrays(*shapes, dtype=jnp.float32):
    keys = jax.random.split(jax.random.key(0), len(shapes))
    return [jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes, strict=True)]


@pytest.mark.parametrize("x_shape", [(5,), (6, 5), (2, 3, 4, 5)])
def test_matmul_value_and_gradients_match_jax(x_shape):
    x, w, probe = _arrays(x_shape, (5, 7), x_shape[:-1] + (7,))

    def loss(product, x, w):
        return jnp.sum(jnp.sin(product(x, w)) * probe)

    np.testing.assert_allclose(matmul(x, w), x @ w, rtol=1e-6)
    ours = jax.grad(loss, argnums=(1, 2))(matmul, x, w)
    jaxs = jax.grad(loss, argnums=(1, 2))(jnp.matmul, x, w)
    for a, b in zip(ours, jaxs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("w_dtype", [jnp.bfloat16, jnp.float32])
def test_matmul_gradients_have_their_operands_dtypes(w_dtype):
    (x,) = _arrays((3, 4, 5), dtype=jnp.bfloat16)
    (w,) = _arrays((5, 6), dtype=w_dtype)

    def loss(product, x, w):
        return product(x, w).astype(jnp.float32).sum()

    ours = jax.grad(loss, argnums=(1, 2))(matmul, x, w)
    jaxs = jax.grad(loss, argnums=(1, 2))(jnp.matmul, x, w)
    assert [(a.dtype, a.shape) for a in ours] == [(a.dtype, a.shape) for a in jaxs]
    assert [a.dtype for a in ours] == [jnp.bfloat16, w_dtype]


def test_weight_gradient_is_one_product_in_its_final_order():
    """What makes it faster on the CPU: jax differentiates `x @ w` into a product over
    every leading dimension whose `[n, k]` result is transposed; ours is one 2D product
    that gives `[k, n]` directly."""
    x, w = _arrays((2, 3, 5), (5, 7))

    def last_op(product):
        jaxpr = jax.make_jaxpr(jax.grad(lambda w: product(x, w).sum()))(w).jaxpr
        (out,) = jaxpr.outvars
        return next(e for e in jaxpr.eqns if out in e.outvars)

    assert last_op(jnp.matmul).primitive.name == "transpose"
    ours = last_op(matmul)
    while ours.primitive.name in ("pjit", "custom_vjp_call", "convert_element_type"):
        inner = ours.params.get("jaxpr") or ours.params.get("call_jaxpr")
        inner = getattr(inner, "jaxpr", inner)
        (out,) = inner.outvars[-1:]
        ours = next(e for e in inner.eqns if out in e.outvars)
    assert ours.primitive.name == "dot_general"
    assert ours.params["dimension_numbers"] == (((1,), (0,)), ((), ()))  # [k, m] @ [m, n]
    assert [v.aval.shape for v in ours.invars] == [(5, 6), (6, 7)]
    assert ours.outvars[0].aval.shape == (5, 7)


@pytest.mark.parametrize(
    "lhs_shape, rhs_shape, dims",
    [
        ((4, 6, 5), (5, 3), (((2,), (0,)), ((), ()))),  # nn.Dense
        ((4, 6, 5), (5, 2, 3), (((2,), (0,)), ((), ()))),  # attention's q/k/v
        ((4, 6, 2, 3), (2, 3, 5), (((2, 3), (0, 1)), ((), ()))),  # attention's output
        ((4, 6, 5), (4, 5, 3), (((2,), (1,)), ((0,), (0,)))),  # batched: jax's own
        ((6, 5), (3, 6), (((0,), (1,)), ((), ()))),  # leading contraction: jax's own
    ],
)
def test_dot_general_matches_lax(lhs_shape, rhs_shape, dims):
    lhs, rhs = _arrays(lhs_shape, rhs_shape)

    def loss(dot, lhs, rhs):
        return jnp.sum(jnp.cos(dot(lhs, rhs, dims)))

    np.testing.assert_allclose(
        dot_general(lhs, rhs, dims), lax.dot_general(lhs, rhs, dims), rtol=1e-5
    )
    ours = jax.grad(loss, argnums=(1, 2))(dot_general, lhs, rhs)
    jaxs = jax.grad(loss, argnums=(1, 2))(lax.dot_general, lhs, rhs)
    for a, b in zip(ours, jaxs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_dense_with_our_dot_general_has_flax_parameters_and_outputs():
    x = _arrays((2, 4, 5))[0]
    ours, flax = nn.Dense(3, dot_general=dot_general), nn.Dense(3)
    params = flax.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(
        jnp.shape, params
    )
    np.testing.assert_allclose(ours.apply(params, x), flax.apply(params, x), rtol=1e-6)
