"""Processing units over the read tokens (LMTTM's Memory Distillation Unit),
`[bs, k, c] -> [bs, k, c]`, samples independent. Our form's are scenic's
(pre-LayerNorm); the PyTorch form's follow the LMTTM authors' model: post-LayerNorm
with PyTorch's LayerNorm, no input position embedding or dropout, no final LayerNorm
after the transformer.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.blocks import XAVIER, MlpBlock, PositionEmbedding
from lmttm_jax.models.forms import PYTORCH
from lmttm_jax.models.layers import FLAX, Layers
from lmttm_jax.models.spec import ModelSpec

# Token-mixing width of the original TTM's Mixer unit.
MIXER_TOKEN_MLP_DIM = 128
# PyTorch's Xavier-uniform stacked `in_proj_weight` [3c, c] (bound sqrt(6 / 4c)), as
# each of the query, key and value kernels [c, c] sees it.
IN_PROJ_INIT = nn.initializers.variance_scaling(0.5, "fan_avg", "uniform")


def repeated(make: Callable[..., nn.Module], name: str, n: int, shared: bool) -> list:
    """`n` uses of one module `make(name=name)` when `shared`, else `name_0`, ...."""
    return [make(name=name)] * n if shared else [make(name=f"{name}_{i}") for i in range(n)]


class Unit(nn.Module):
    """A processing unit of `spec`, built with `layers`."""

    spec: ModelSpec
    layers: Layers = FLAX


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        ly, rate = self.layers, self.dropout_rate
        y = nn.LayerNorm()(x)
        y = ly.MultiHeadAttention(
            num_heads=self.num_heads,
            kernel_init=XAVIER,
            broadcast_dropout=False,
            dropout_rate=rate,
            deterministic=deterministic,
        )(y, y)
        x = x + ly.Dropout(rate)(y, deterministic=deterministic)
        y = MlpBlock(self.mlp_dim, None, rate, ly)(nn.LayerNorm()(x), deterministic=deterministic)
        return x + y


class Transformer(Unit):
    """ViT-style encoder: learned input position embedding, dropout, `depth` pre-LN
    blocks (or one block applied `depth` times when `share_weights`), final LayerNorm."""

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        s = self.spec
        block = functools.partial(EncoderBlock, s.num_heads, s.mlp_dim, s.dropout, self.layers)
        x = PositionEmbedding(name="posembed_input")(x)
        x = self.layers.Dropout(s.dropout)(x, deterministic=deterministic)
        for each in repeated(block, "encoderblock", s.depth, s.share_weights):
            x = each(x, deterministic=deterministic)
        return nn.LayerNorm(name="encoder_norm")(x)


class MixerBlock(nn.Module):
    """MLP-Mixer block: token mixing then channel mixing, each pre-LN with a residual."""

    mlp_dim: int
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        ly, rate = self.layers, self.dropout_rate
        y = nn.LayerNorm()(x).swapaxes(-1, -2)  # [bs, c, k]
        y = MlpBlock(MIXER_TOKEN_MLP_DIM, None, rate, ly, name="token_mixing")(
            y, deterministic=deterministic
        )
        x = x + y.swapaxes(-1, -2)
        y = MlpBlock(self.mlp_dim, None, rate, ly, name="channel_mixing")(
            nn.LayerNorm()(x), deterministic=deterministic
        )
        return x + y


class Mixer(Unit):
    """`depth` Mixer blocks and a final LayerNorm."""

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        s = self.spec
        for _ in range(s.depth):
            x = MixerBlock(s.mlp_dim, s.dropout, self.layers)(x, deterministic=deterministic)
        return nn.LayerNorm()(x)


class MlpUnit(Unit):
    """`depth` times LayerNorm -> MLP (no residual, as in the original TTM), final
    LayerNorm."""

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        s = self.spec
        for _ in range(s.depth):
            mlp = MlpBlock(s.mlp_dim, None, s.dropout, self.layers)
            x = mlp(nn.LayerNorm()(x), deterministic=deterministic)
        return nn.LayerNorm()(x)


class PostLNEncoderLayer(nn.Module):
    """PyTorch's `TransformerEncoderLayer` (ReLU, post-LayerNorm) within each sample:
    `x = LN1(x + Drop(SA(x)))`, `x = LN2(x + Drop(W2 Drop(ReLU(W1 x + b1)) + b2))`,
    attention dropout on the attention weights."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        ly, rate, det = self.layers, self.dropout_rate, deterministic
        y = ly.MultiHeadAttention(
            num_heads=self.num_heads,
            kernel_init=IN_PROJ_INIT,
            out_kernel_init=XAVIER,
            broadcast_dropout=False,
            dropout_rate=rate,
            deterministic=det,
            name="attention",
        )(x, x)
        x = PYTORCH.layer_norm("norm1")(x + ly.Dropout(rate)(y, deterministic=det))
        y = nn.relu(ly.Dense(self.mlp_dim, kernel_init=XAVIER, name="linear1")(x))
        y = ly.Dropout(rate)(y, deterministic=det)
        y = ly.Dense(x.shape[-1], kernel_init=XAVIER, name="linear2")(y)
        return PYTORCH.layer_norm("norm2")(x + ly.Dropout(rate)(y, deterministic=det))


class PostLNTransformer(Unit):
    """`depth` post-LN layers (one layer, `layer`, applied `depth` times when
    `share_weights`; else `layer_0`, ...)."""

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        s, ly = self.spec, self.layers
        layer = functools.partial(PostLNEncoderLayer, s.num_heads, s.mlp_dim, s.dropout, ly)
        for each in repeated(layer, "layer", s.depth, s.share_weights):
            x = each(x, deterministic=deterministic)
        return x


class PyTorchMlpBlock(nn.Module):
    """The PyTorch model's `mlpBlock`: LN -> Dense -> Dropout -> GELU -> Dense -> GELU
    -> Dropout (erf GELU, no residual)."""

    mlp_dim: int
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        ly, c = self.layers, x.shape[-1]
        y = PYTORCH.layer_norm("norm")(x)
        y = ly.Dense(self.mlp_dim, kernel_init=XAVIER, name="linear1")(y)
        y = ly.exact_gelu(ly.Dropout(self.dropout_rate)(y, deterministic=deterministic))
        y = ly.exact_gelu(ly.Dense(c, kernel_init=XAVIER, name="linear2")(y))
        return ly.Dropout(self.dropout_rate)(y, deterministic=deterministic)


class PyTorchMlpUnit(Unit):
    """The PyTorch model's `mlp` unit: `x <- Block(LN(x))` `depth` times, then `LN(x)`.
    With `share_weights` (the PyTorch model's form) one block and one LayerNorm,
    `norm`, serve every time (the LayerNorm `depth + 1` times); else `block_i` and
    `norm_0..norm_depth`."""

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        s = self.spec
        block = functools.partial(PyTorchMlpBlock, s.mlp_dim, s.dropout, self.layers)
        norms = repeated(PYTORCH.layer_norm, "norm", s.depth + 1, s.share_weights)
        blocks = repeated(block, "block", s.depth, s.share_weights)
        for norm, each in zip(norms, blocks, strict=False):
            x = each(norm(x), deterministic=deterministic)
        return norms[-1](x)


# Processing units by model form (a key of `forms.FORMS`), then by name. The PyTorch
# form's mixer does not run in its LMTTM (docs/lmttm.md), so it has none.
PROCESSING_UNITS: dict[str, dict[str, type[Unit]]] = {
    "ours": {"transformer": Transformer, "mixer": Mixer, "mlp": MlpUnit},
    "pytorch": {"transformer": PostLNTransformer, "mlp": PyTorchMlpUnit},
}
