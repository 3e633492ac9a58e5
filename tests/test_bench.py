"""The benchmark's FLOP counter: matmuls and convolutions, scans times trip count."""

import jax
import jax.numpy as jnp
import pytest

from lmttm_jax.bench import jaxpr_flops


def test_counts_matmul_inside_scan_times_length():
    w = jnp.ones((16, 32))

    def f(x):
        def body(c, _):
            return jnp.tanh(c @ w @ w.T), None

        return jax.lax.scan(body, x, None, length=7)[0]

    flops = jaxpr_flops(jax.make_jaxpr(f)(jnp.ones((4, 16))))
    assert flops == 7 * 2 * (2 * 4 * 16 * 32)


def test_counts_conv_and_batched_dot():
    x = jnp.ones((2, 9, 9, 9, 1))
    k = jnp.ones((3, 3, 3, 1, 8))
    conv = jax.make_jaxpr(
        lambda x: jax.lax.conv_general_dilated(
            x, k, (3, 3, 3), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
        )
    )(x)
    assert jaxpr_flops(conv) == 2 * (2 * 3 * 3 * 3 * 8) * 27
    a, b = jnp.ones((5, 3, 4)), jnp.ones((5, 4, 6))
    assert jaxpr_flops(jax.make_jaxpr(jnp.matmul)(a, b)) == 2 * 5 * 3 * 6 * 4


def test_while_loop_is_refused():
    f = jax.make_jaxpr(lambda x: jax.lax.while_loop(lambda c: c < 3, lambda c: c + 1, x))
    with pytest.raises(ValueError, match="trip count"):
        jaxpr_flops(f(0))
