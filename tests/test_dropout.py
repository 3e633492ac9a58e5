"""Dropout with hashed masks: the keep rate, independence between keys and between
neighbouring elements, scaling, determinism, and the attention function."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmttm_jax.models.cpu import dropout

SHAPE = (64, 1024)  # 65,536 elements: a binomial standard deviation of 0.0016 at p=0.8


def corr(a: jax.Array, b: jax.Array) -> float:
    return float(np.corrcoef(np.ravel(a).astype(float), np.ravel(b).astype(float))[0, 1])


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.5, 0.9])
def test_keep_rate(rate):
    for seed in range(3):
        kept = dropout.keep_mask(jax.random.key(seed), SHAPE, rate).mean()
        sigma = np.sqrt(rate * (1 - rate) / np.prod(SHAPE))
        assert abs(float(kept) - (1 - rate)) < 5 * sigma


def test_masks_of_other_keys_and_neighbours_are_uncorrelated():
    key = jax.random.key(0)
    mask = dropout.keep_mask(key, SHAPE, 0.5)
    limit = 5 / np.sqrt(np.prod(SHAPE))  # five standard deviations of a zero correlation
    # keys as Flax derives them: split, folded in with successive integers
    others = [*jax.random.split(key, 2), jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)]
    for other in others:
        assert abs(corr(mask, dropout.keep_mask(other, SHAPE, 0.5))) < limit
    flat = np.ravel(mask)
    for lag in (1, 2, 1024):  # neighbours along a row, and along a column
        assert abs(corr(flat[:-lag], flat[lag:])) < limit
    # every bit of the hash is used: the low and high bits are balanced and independent
    bits = np.asarray(dropout.random_bits(key, SHAPE))
    low, high = bits & 1, bits >> 31
    assert abs(low.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
    assert abs(high.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
    assert abs(corr(low, high)) < limit


def test_same_key_same_mask_and_scaling():
    x = jnp.ones(SHAPE)
    key = jax.random.key(7)
    out = dropout.drop(x, key, 0.2)
    np.testing.assert_array_equal(out, dropout.drop(x, key, 0.2))
    values = np.unique(np.asarray(out))
    np.testing.assert_allclose(values, [0.0, 1.25])
    grad = jax.grad(lambda x: dropout.drop(x, key, 0.2).sum())(x)
    np.testing.assert_array_equal(grad, out)  # the gradient is the scaled mask


def test_module_follows_the_dropout_stream_and_deterministic_flag():
    layer = dropout.Dropout(0.3)
    x = jnp.ones((8, 256))
    assert layer.apply({}, x, True) is x
    assert dropout.Dropout(0.0).apply({}, x, False) is x
    np.testing.assert_array_equal(dropout.Dropout(1.0).apply({}, x, False), 0.0)
    a = layer.apply({}, x, False, rngs={"dropout": jax.random.key(1)})
    b = layer.apply({}, x, False, rngs={"dropout": jax.random.key(1)})
    c = layer.apply({}, x, False, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(flax.errors.InvalidRngError):
        layer.apply({}, x, False)


class TwoCalls(nn.Module):
    @nn.compact
    def __call__(self, x):
        d = dropout.Dropout(0.5)
        return d(x, False), d(x, False)


def test_each_call_draws_its_own_key():
    first, second = TwoCalls().apply({}, jnp.ones((16, 64)), rngs={"dropout": jax.random.key(0)})
    assert not np.array_equal(first, second)


def test_attention_matches_flax_without_dropout_and_drops_weights_with_it():
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 5, 4, 8))
    mask = jnp.tril(jnp.ones((5, 5), bool))[None, None]
    np.testing.assert_allclose(
        dropout.attention(q, k, v, mask=mask, deterministic=True),
        nn.dot_product_attention(q, k, v, mask=mask, deterministic=True),
        rtol=1e-6,
        atol=1e-6,
    )
    rng = jax.random.key(3)
    dropped = dropout.attention(q, k, v, dropout_rng=rng, dropout_rate=0.5)
    weights = nn.dot_product_attention_weights(q, k)
    expected = jnp.einsum("...hqk,...khd->...qhd", dropout.drop(weights, rng, 0.5), v)
    np.testing.assert_allclose(dropped, expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(dropped, dropout.attention(q, k, v, deterministic=True))
