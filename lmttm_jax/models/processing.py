"""Processing units over the read tokens (LMTTM's Memory Distillation Unit).

All units map `[bs, k, c] -> [bs, k, c]` and treat samples independently. These are
our form's (scenic's, pre-LayerNorm); the seed form's are in `processing_seed.py`.
"""

from collections.abc import Callable

import flax.linen as nn
import jax

from lmttm_jax.models.dropout import Dropout, MultiHeadAttention
from lmttm_jax.models.mlp import XAVIER, MlpBlock, PositionEmbedding
from lmttm_jax.models.processing_seed import SeedMlpUnit, SeedTransformer
from lmttm_jax.models.spec import ModelSpec

# Token-mixing width of the original TTM's Mixer unit.
MIXER_TOKEN_MLP_DIM = 128


class EncoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        y = nn.LayerNorm()(x)
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            kernel_init=XAVIER,
            broadcast_dropout=False,
            dropout_rate=self.dropout_rate,
            deterministic=deterministic,
        )(y, y)
        x = x + Dropout(self.dropout_rate)(y, deterministic=deterministic)
        y = MlpBlock(self.mlp_dim, None, self.dropout_rate)(
            nn.LayerNorm()(x), deterministic=deterministic
        )
        return x + y


class Transformer(nn.Module):
    """ViT-style encoder: learned input position embedding, dropout, `depth` pre-LN
    blocks (or one block applied `depth` times when `share_weights`), final LayerNorm.

    `[bs, k, c] -> [bs, k, c]`.
    """

    depth: int
    num_heads: int
    mlp_dim: int
    dropout_rate: float = 0.0
    share_weights: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        x = PositionEmbedding(name="posembed_input")(x)
        x = Dropout(self.dropout_rate)(x, deterministic=deterministic)
        if self.share_weights:
            block = EncoderBlock(
                self.num_heads, self.mlp_dim, self.dropout_rate, name="encoderblock"
            )
            blocks = [block] * self.depth
        else:
            blocks = [
                EncoderBlock(
                    self.num_heads, self.mlp_dim, self.dropout_rate, name=f"encoderblock_{i}"
                )
                for i in range(self.depth)
            ]
        for block in blocks:
            x = block(x, deterministic=deterministic)
        return nn.LayerNorm(name="encoder_norm")(x)


class MixerBlock(nn.Module):
    """MLP-Mixer block: token mixing then channel mixing, each pre-LN with a residual."""

    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        y = nn.LayerNorm()(x).swapaxes(-1, -2)  # [bs, c, k]
        y = MlpBlock(MIXER_TOKEN_MLP_DIM, None, self.dropout_rate, name="token_mixing")(
            y, deterministic=deterministic
        )
        x = x + y.swapaxes(-1, -2)
        y = MlpBlock(self.mlp_dim, None, self.dropout_rate, name="channel_mixing")(
            nn.LayerNorm()(x), deterministic=deterministic
        )
        return x + y


class Mixer(nn.Module):
    """`depth` Mixer blocks and a final LayerNorm. `[bs, k, c] -> [bs, k, c]`."""

    depth: int
    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        for _ in range(self.depth):
            x = MixerBlock(self.mlp_dim, self.dropout_rate)(x, deterministic=deterministic)
        return nn.LayerNorm()(x)


class MlpUnit(nn.Module):
    """`depth` times LayerNorm -> MLP (no residual, as in the original TTM), final
    LayerNorm. `[bs, k, c] -> [bs, k, c]`."""

    depth: int
    mlp_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        for _ in range(self.depth):
            x = MlpBlock(self.mlp_dim, None, self.dropout_rate)(
                nn.LayerNorm()(x), deterministic=deterministic
            )
        return nn.LayerNorm()(x)


# Processing units by name: (spec, module name) -> module.
PROCESSING_UNITS: dict[str, Callable[[ModelSpec, str], nn.Module]] = {
    "transformer": lambda s, name: Transformer(
        s.depth, s.num_heads, s.mlp_dim, s.dropout, s.share_weights, name=name
    ),
    "mixer": lambda s, name: Mixer(s.depth, s.mlp_dim, s.dropout, name=name),
    "mlp": lambda s, name: MlpUnit(s.depth, s.mlp_dim, s.dropout, name=name),
}
# The seed form's units (its mixer does not run in its LMTTM: docs/lmttm.md).
SEED_PROCESSING_UNITS: dict[str, Callable[[ModelSpec, str], nn.Module]] = {
    "transformer": lambda s, name: SeedTransformer(
        s.depth, s.num_heads, s.mlp_dim, s.dropout, s.share_weights, name=name
    ),
    "mlp": lambda s, name: SeedMlpUnit(s.depth, s.mlp_dim, s.dropout, s.share_weights, name=name),
}
# By model form (`ModelSpec.variant`, the keys of `variants.FORMS`).
UNITS_BY_VARIANT = {"ours": PROCESSING_UNITS, "seed": SEED_PROCESSING_UNITS}


def make_processing_unit(spec: ModelSpec, name: str) -> nn.Module:
    """The processing unit `spec.processing` of the form `spec.variant`."""
    units = UNITS_BY_VARIANT[spec.variant]
    if spec.processing not in units:
        raise ValueError(
            f"unknown processing unit {spec.processing!r} for model variant "
            f"{spec.variant!r}; expected one of {tuple(units)}"
        )
    return units[spec.processing](spec, name)
