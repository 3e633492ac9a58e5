"""Pieces shared by the token learners and the processing units: the two-layer MLP
block, GELU with a hand-written derivative, position embeddings, batch-shared sums."""

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.dropout import Dropout
from lmttm_jax.models.matmul import Dense

# Initialisers of the original JAX TTM / ViT MLP blocks.
XAVIER = nn.initializers.xavier_uniform()
TINY_NORMAL = nn.initializers.normal(stddev=1e-6)


# GELU's derivative is given by hand (custom JVP) so that autodiff keeps one residual
# per element, GELU'(x), instead of every intermediate of the formula: the same
# values, several times less memory traffic in the backward pass.
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_GELU_CUBIC = 0.044715


@jax.custom_jvp
def exact_gelu(x: jax.Array) -> jax.Array:
    """GELU with the erf formula (PyTorch's default, used by the LMTTM reference)."""
    return x * _normal_cdf(x)


def _normal_cdf(x: jax.Array) -> jax.Array:
    return 0.5 * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


@exact_gelu.defjvp
def _exact_gelu_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    cdf = _normal_cdf(x)
    pdf = jnp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
    return x * cdf, (cdf + x * pdf) * t


@jax.custom_jvp
def tanh_gelu(x: jax.Array) -> jax.Array:
    """GELU with the tanh approximation (`nn.gelu`'s default, the original TTM's)."""
    return 0.5 * x * (1.0 + jnp.tanh(SQRT_2_OVER_PI * (x + TANH_GELU_CUBIC * x**3)))


@tanh_gelu.defjvp
def _tanh_gelu_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (t,) = primals, tangents
    th = jnp.tanh(SQRT_2_OVER_PI * (x + TANH_GELU_CUBIC * x**3))
    inner = SQRT_2_OVER_PI * (1.0 + 3.0 * TANH_GELU_CUBIC * x * x)
    grad = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * inner
    return 0.5 * x * (1.0 + th), grad * t


class MlpBlock(nn.Module):
    """Dense -> activation -> dropout -> Dense -> dropout on the last axis.

    `[..., c_in] -> [..., out_dim or c_in]`.
    """

    mlp_dim: int
    out_dim: int | None = None
    dropout_rate: float = 0.0
    activation: Callable[[jax.Array], jax.Array] = tanh_gelu

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        out_dim = x.shape[-1] if self.out_dim is None else self.out_dim
        x = Dense(self.mlp_dim, kernel_init=XAVIER, bias_init=TINY_NORMAL)(x)
        x = self.activation(x)
        x = Dropout(self.dropout_rate)(x, deterministic=deterministic)
        x = Dense(out_dim, kernel_init=XAVIER, bias_init=TINY_NORMAL)(x)
        return Dropout(self.dropout_rate)(x, deterministic=deterministic)


class PositionEmbedding(nn.Module):
    """Adds a learned position embedding: `[bs, n, c] -> [bs, n, c]`.

    The embedding is a parameter of shape `[1, n, c]`, initialised N(0, 0.02) as in
    BERT/ViT. It is fixed at evaluation (the LMTTM reference re-drew random
    embeddings at every call, which made evaluation random).
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pe = self.param("pos_embedding", nn.initializers.normal(stddev=0.02), (1,) + x.shape[-2:])
        return x + pe.astype(x.dtype)


def softmax_over_tokens(logits: jax.Array) -> jax.Array:
    """`[..., n, k]` per-token logits -> `[..., k, n]` weights summing to 1 over n."""
    return jax.nn.softmax(jnp.swapaxes(logits, -1, -2), axis=-1)


@jax.custom_vjp
def shared_add(x: jax.Array, a: jax.Array) -> jax.Array:
    """`x [..., m, d] + a [m, d]`: `a` is shared by the leading (batch) axes.

    The gradient of `a` sums over the batch as a matrix-vector product: XLA's CPU
    reduction over a leading axis is many times slower than the same sum as a dot.
    """
    return x + a


def _shared_add_fwd(x: jax.Array, a: jax.Array) -> tuple[jax.Array, tuple]:
    # Zero-size arrays carry the input dtypes to the backward pass.
    return x + a, (jnp.zeros((0,), x.dtype), jnp.zeros((0,), a.dtype))


def _shared_add_bwd(dtypes: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x_type, a_type = dtypes
    flat = g.reshape((-1,) + g.shape[-2:])
    da = jnp.tensordot(jnp.ones(flat.shape[0], g.dtype), flat, axes=(0, 0))
    return g.astype(x_type.dtype), da.astype(a_type.dtype)


shared_add.defvjp(_shared_add_fwd, _shared_add_bwd)


def broadcast_batch(a: jax.Array, batch_size: int) -> jax.Array:
    """`[1, ..., d] -> [batch_size, ..., d]`, the gradient summed as in `shared_add`."""
    flat = a.reshape(-1, a.shape[-1])
    out = shared_add(jnp.zeros((batch_size,) + flat.shape, a.dtype), flat)
    return out.reshape((batch_size,) + a.shape[1:])
