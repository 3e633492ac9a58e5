"""Dropout with masks hashed from the element index instead of drawn as Threefry bits
(faster on XLA's CPU backend: docs/performance.md). Each call takes one key from Flax's
`dropout` stream; an element's 32 bits are a keyed hash of its index (two rounds of
MurmurHash3's finaliser). The masks differ from `nn.Dropout`'s.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _fmix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    x = (x ^ (x >> 16)) * np.uint32(0x85EBCA6B)
    x = (x ^ (x >> 13)) * np.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """uint32 bits of `shape`, a function of the key and each element's flat index."""
    k = jax.random.key_data(key).reshape(-1).astype(jnp.uint32)
    index = jax.lax.iota(jnp.uint32, int(np.prod(shape, dtype=np.int64))).reshape(shape)
    return _fmix32(_fmix32(index ^ k[0]) + k[1])


def keep_mask(key: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """True where an element is kept, with probability `1 - rate` each (to 2^-32)."""
    threshold = np.uint32(min(round(rate * 2.0**32), 2**32 - 1))
    return random_bits(key, shape) >= threshold


def drop(x: jax.Array, key: jax.Array, rate: float) -> jax.Array:
    """`x` with each element zeroed with probability `rate` in [0, 1), the rest scaled
    by `1 / (1 - rate)`."""
    return jnp.where(keep_mask(key, x.shape, rate), x / (1.0 - rate), jnp.zeros_like(x))


class Dropout(nn.Module):
    """`nn.Dropout` (same `rate`, same `dropout` RNG stream) with hashed masks."""

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if self.rate == 0.0 or deterministic:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        return drop(x, self.make_rng("dropout"), self.rate)


def attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    mask: jax.Array | None = None,
    dropout_rng: jax.Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: jnp.dtype | None = None,
    precision: jax.lax.Precision | None = None,
) -> jax.Array:
    """Flax's dot-product attention, the dropout on its weights from `drop`: the
    `attention_fn` of `nn.MultiHeadDotProductAttention` (without `broadcast_dropout`).

    `[bs, q, h, d], [bs, k, h, d], [bs, k, h, d] -> [bs, q, h, d]`.
    """
    weights = nn.dot_product_attention_weights(
        query, key, mask=mask, dtype=dtype, precision=precision
    )  # [bs, h, q, k]
    if not deterministic and dropout_rate > 0.0:
        weights = drop(weights, dropout_rng, dropout_rate)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)
