"""TokenLearner read/write modules: summarise N tokens into k tokens.

All learners map `[..., N, c] -> [..., k, c]`; leading axes (batch, and the three
reads of LMTTM) are independent.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.mlp import MlpBlock, exact_gelu, softmax_over_tokens, tanh_gelu

# Bottleneck width of the original TokenLearner V11 and AddErase MLPs.
V11_BOTTLENECK = 64
# The original TTM builds its AddErase write with this many erase/add vectors.
ADD_ERASE_TOKENS = 8


class TokenLearner(nn.Module):
    """TokenLearner as the LMTTM reference uses it (`TL`).

    weights = softmax_N(MLP(LayerNorm(x))), values = GELU(Dense(x)) on the raw
    tokens, output = weights^T . values, then dropout. GELU is the erf form.

    `[..., N, c] -> [..., num_tokens, c]`.
    """

    num_tokens: int
    hidden_dim: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        logits = nn.LayerNorm(name="norm")(x)
        logits = nn.Dense(self.hidden_dim, name="attn_hidden")(logits)
        logits = nn.Dense(self.num_tokens, name="attn_out")(exact_gelu(logits))
        weights = softmax_over_tokens(logits)  # [..., k, N]
        self.sow("intermediates", "weights", weights)
        values = exact_gelu(nn.Dense(x.shape[-1], name="value")(x))  # [..., N, c]
        out = jnp.einsum("...kn,...nc->...kc", weights, values)
        return nn.Dropout(self.dropout_rate)(out, deterministic=deterministic)


class TokenLearnerV11(nn.Module):
    """TokenLearner V11 as the original JAX TTM uses it (`TL-V11`).

    weights = softmax_N(MLP_64(LayerNorm(x))) with tanh-GELU; output = weights^T . x
    on the raw tokens.

    `[..., N, c] -> [..., num_tokens, c]`.
    """

    num_tokens: int
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        logits = nn.LayerNorm()(x)
        logits = MlpBlock(
            V11_BOTTLENECK, self.num_tokens, self.dropout_rate, tanh_gelu, name="token_masking"
        )(logits, deterministic=deterministic)
        weights = softmax_over_tokens(logits)  # [..., k, N]
        self.sow("intermediates", "weights", weights)
        return jnp.einsum("...kn,...nc->...kc", weights, x)


class TokenLearnerMHA(nn.Module):
    """`TL-MHA`: k learned query tokens attend to the inputs with multi-head attention.

    `[bs, N, c] -> [bs, num_tokens, c]` (any leading axes are folded into the batch).
    """

    num_tokens: int
    num_heads: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        del deterministic  # The original applies no dropout here.
        lead, (n, c) = x.shape[:-2], x.shape[-2:]
        x = x.reshape((-1, n, c))
        tokens = self.param("tokens", nn.initializers.normal(0.02), (1, self.num_tokens, c))
        tokens = jnp.broadcast_to(tokens, (x.shape[0], self.num_tokens, c)).astype(x.dtype)
        out = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, deterministic=True, name="attn"
        )(tokens, x)
        return out.reshape(lead + (self.num_tokens, c))


class AddEraseWrite(nn.Module):
    """The original TTM's add/erase write (after Neural Turing Machines).

    Soft selections over the memory tokens come from the memory itself; erase and
    add vectors come from the control (output) tokens:
    M' = M * prod_k(1 - w_k e_k) + mean_k(1 - w_k a_k), as the original computes it.

    memory `[bs, m, c]`, control `[bs, r, c]` -> `[bs, m, c]`.
    """

    dropout_rate: float = 0.0

    def _vectors(self, control: jax.Array, deterministic: bool) -> jax.Array:
        """`[bs, r, c] -> [bs, ADD_ERASE_TOKENS, c]`: mix over tokens, then channels."""
        v = jnp.swapaxes(nn.LayerNorm()(control), 1, 2)  # [bs, c, r]
        v = MlpBlock(V11_BOTTLENECK, ADD_ERASE_TOKENS, self.dropout_rate)(
            v, deterministic=deterministic
        )
        v = jnp.swapaxes(v, 1, 2)  # [bs, k, c]
        return MlpBlock(V11_BOTTLENECK, None, self.dropout_rate)(v, deterministic=deterministic)

    @nn.compact
    def __call__(self, memory: jax.Array, control: jax.Array, *, deterministic: bool) -> jax.Array:
        select = MlpBlock(V11_BOTTLENECK, ADD_ERASE_TOKENS, self.dropout_rate)(
            nn.LayerNorm()(memory), deterministic=deterministic
        )
        select = softmax_over_tokens(select)[..., None]  # [bs, k, m, 1]
        erase = self._vectors(control, deterministic)[:, :, None, :]  # [bs, k, 1, c]
        out = memory * jnp.prod(1.0 - select * erase, axis=1)
        add = self._vectors(control, deterministic)[:, :, None, :]
        return out + jnp.mean(1.0 - select * add, axis=1)


def make_learner(
    kind: str, num_tokens: int, hidden_dim: int, dropout_rate: float, mha_heads: int, name: str
) -> nn.Module:
    """Builds a read/write token learner by name: `tl`, `tl_v11` or `tl_mha`."""
    if kind == "tl":
        return TokenLearner(num_tokens, hidden_dim, dropout_rate, name=name)
    if kind == "tl_v11":
        return TokenLearnerV11(num_tokens, dropout_rate, name=name)
    if kind == "tl_mha":
        return TokenLearnerMHA(num_tokens, mha_heads, name=name)
    raise ValueError(f"unknown token learner {kind!r}; expected tl, tl_v11 or tl_mha")


LEARNERS = {"tl": TokenLearner, "tl_v11": TokenLearnerV11, "tl_mha": TokenLearnerMHA}
WRITERS = {**LEARNERS, "add_erase": AddEraseWrite}  # `add_erase`: TTM only
