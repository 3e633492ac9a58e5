"""The seed's processing units (Memory Distillation Units), `model.variant="seed"`.

PyTorch semantics: post-LayerNorm, LayerNorm epsilon 1e-5 with a two-pass variance,
Xavier-uniform kernels and zero biases (the seed's `init_weights`). With
`share_weights` (the seed's form) one layer is applied `depth` times. Unlike ours
(`processing.py`): no input position embedding, no dropout at the input, no final
LayerNorm after the transformer. All units map `[bs, k, c] -> [bs, k, c]`.
"""

from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.dropout import Dropout, MultiHeadAttention
from lmttm_jax.models.matmul import Dense
from lmttm_jax.models.mlp import XAVIER, exact_gelu
from lmttm_jax.models.variants import SEED

# PyTorch draws the stacked `in_proj_weight` [3c, c] Xavier-uniform, bound
# sqrt(6 / 4c): for each of the query, key, value kernels ([c, c] flat) that is
# variance scaling 0.5 over the average fan.
IN_PROJ_INIT = nn.initializers.variance_scaling(0.5, "fan_avg", "uniform")


class PostLNEncoderLayer(nn.Module):
    """PyTorch's `TransformerEncoderLayer` (ReLU, post-LayerNorm) within each sample:
    `x = LN1(x + Drop(SA(x)))`, `x = LN2(x + Drop(W2 Drop(ReLU(W1 x + b1)) + b2))`,
    attention dropout on the attention weights. `[bs, k, c] -> [bs, k, c]`."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            kernel_init=IN_PROJ_INIT,
            out_kernel_init=XAVIER,
            broadcast_dropout=False,
            dropout_rate=self.dropout_rate,
            deterministic=deterministic,
            name="attention",
        )(x, x)
        x = SEED.layer_norm("norm1")(x + Dropout(self.dropout_rate)(y, deterministic))
        y = nn.relu(Dense(self.mlp_dim, kernel_init=XAVIER, name="linear1")(x))
        y = Dropout(self.dropout_rate)(y, deterministic)
        y = Dense(x.shape[-1], kernel_init=XAVIER, name="linear2")(y)
        return SEED.layer_norm("norm2")(x + Dropout(self.dropout_rate)(y, deterministic))


def repeated(make: Callable[[str], nn.Module], name: str, n: int, shared: bool) -> list:
    """`n` uses of one module `name` when `shared`, else `name_0`, ..., `name_{n-1}`."""
    return [make(name)] * n if shared else [make(f"{name}_{i}") for i in range(n)]


class SeedTransformer(nn.Module):
    """`depth` post-LN layers (one layer, `layer`, applied `depth` times when
    `share_weights`; else `layer_0`, ...). `[bs, k, c] -> [bs, k, c]`."""

    depth: int
    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    share_weights: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        def layer(name: str) -> PostLNEncoderLayer:
            return PostLNEncoderLayer(self.num_heads, self.mlp_dim, self.dropout_rate, name=name)

        for each in repeated(layer, "layer", self.depth, self.share_weights):
            x = each(x, deterministic=deterministic)
        return x


class SeedMlpBlock(nn.Module):
    """The seed's `mlpBlock`: LN -> Dense -> Dropout -> GELU -> Dense -> GELU ->
    Dropout (erf GELU, no residual). `[bs, k, c] -> [bs, k, c]`."""

    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        c = x.shape[-1]
        y = Dense(self.mlp_dim, kernel_init=XAVIER, name="linear1")(SEED.layer_norm("norm")(x))
        y = exact_gelu(Dropout(self.dropout_rate)(y, deterministic))
        y = exact_gelu(Dense(c, kernel_init=XAVIER, name="linear2")(y))
        return Dropout(self.dropout_rate)(y, deterministic)


class SeedMlpUnit(nn.Module):
    """The seed's `mlp` unit: `x <- Block(LN(x))` `depth` times, then `LN(x)`. With
    `share_weights` (the seed's form) one block and one LayerNorm, `norm`, serve every
    time (the LayerNorm `depth + 1` times); else `block_i` and `norm_0..norm_depth`.
    `[bs, k, c] -> [bs, k, c]`."""

    depth: int
    mlp_dim: int
    dropout_rate: float = 0.0
    share_weights: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        def block(name: str) -> SeedMlpBlock:
            return SeedMlpBlock(self.mlp_dim, self.dropout_rate, name=name)

        norms = repeated(SEED.layer_norm, "norm", self.depth + 1, self.share_weights)
        blocks = repeated(block, "block", self.depth, self.share_weights)
        for norm, block in zip(norms, blocks, strict=False):
            x = block(norm(x), deterministic=deterministic)
        return norms[-1](x)
