"""Blocks shared by the token learners, the processing units and the memory step: the
two-layer MLP block, learned position embeddings, the softmax over tokens."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.layers import FLAX, Layers

# Initialisers of the original JAX TTM / ViT MLP blocks.
XAVIER = nn.initializers.xavier_uniform()
TINY_NORMAL = nn.initializers.normal(stddev=1e-6)


class MlpBlock(nn.Module):
    """Dense -> tanh-GELU -> dropout -> Dense -> dropout on the last axis (ViT's).

    `[..., c_in] -> [..., out_dim or c_in]`.
    """

    mlp_dim: int
    out_dim: int | None = None
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        ly = self.layers
        out_dim = x.shape[-1] if self.out_dim is None else self.out_dim
        x = ly.Dense(self.mlp_dim, kernel_init=XAVIER, bias_init=TINY_NORMAL)(x)
        x = ly.Dropout(self.dropout_rate)(ly.tanh_gelu(x), deterministic=deterministic)
        x = ly.Dense(out_dim, kernel_init=XAVIER, bias_init=TINY_NORMAL)(x)
        return ly.Dropout(self.dropout_rate)(x, deterministic=deterministic)


class PositionEmbedding(nn.Module):
    """Adds a learned position embedding `[1, n, c]`, N(0, 0.02) as in BERT/ViT:
    `[bs, n, c] -> [bs, n, c]`."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pe = self.param("pos_embedding", nn.initializers.normal(stddev=0.02), (1,) + x.shape[-2:])
        return x + pe.astype(x.dtype)


def softmax_over_tokens(logits: jax.Array) -> jax.Array:
    """`[..., n, k]` per-token logits -> `[..., k, n]` weights summing to 1 over n."""
    return jax.nn.softmax(jnp.swapaxes(logits, -1, -2), axis=-1)
