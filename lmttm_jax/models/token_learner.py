"""TokenLearner read/write modules: summarise N tokens into k tokens.

All learners map `[..., N, c] -> [..., k, c]`; leading axes (batch, and the three
reads of LMTTM) are independent.
"""

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.blocks import MlpBlock, softmax_over_tokens
from lmttm_jax.models.forms import FORMS, OURS, Form
from lmttm_jax.models.layers import FLAX, Layers

# Bottleneck width of the original TTM's TokenLearner and AddErase MLPs.
BOTTLENECK = 64
# The original TTM builds its AddErase write with this many erase/add vectors.
ADD_ERASE_TOKENS = 8


class TokenLearner(nn.Module):
    """TokenLearner as the LMTTM reference uses it (`tl`): weights =
    softmax_N(MLP(LayerNorm(x))), values = GELU(Dense(x)) (erf GELU), output =
    weights^T . values, then dropout. `form` gives the initialiser, the LayerNorm and
    the Dense layers' biases.

    `[..., N, dim] -> [..., num_tokens, dim]`.
    """

    num_tokens: int
    hidden_dim: int
    dim: int
    dropout_rate: float = 0.0
    form: Form = OURS
    layers: Layers = FLAX

    def setup(self) -> None:
        f = self.form
        dense = functools.partial(
            self.layers.Dense, use_bias=f.learner_bias, kernel_init=f.kernel_init
        )
        self.norm = f.layer_norm()
        self.attn_hidden = dense(self.hidden_dim)
        self.attn_out = dense(self.num_tokens)
        self.value = dense(self.dim)
        self.dropout = self.layers.Dropout(self.dropout_rate)

    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        gelu = self.layers.exact_gelu
        logits = self.attn_out(gelu(self.attn_hidden(self.norm(x))))  # [..., N, k]
        weights = softmax_over_tokens(logits)  # [..., k, N]
        self.sow("intermediates", "weights", weights)
        values = gelu(self.value(x))  # [..., N, c]
        out = jnp.einsum("...kn,...nc->...kc", weights, values)
        return self.dropout(out, deterministic=deterministic)


class TokenLearnerTTM(nn.Module):
    """TokenLearner as the original JAX TTM uses it (scenic's `TokenLearnerModuleV11`):
    weights = softmax_N(MLP_64(LayerNorm(x))) with tanh-GELU; output = weights^T . x.

    `[..., N, c] -> [..., num_tokens, c]`.
    """

    num_tokens: int
    dropout_rate: float = 0.0
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        mlp = MlpBlock(
            BOTTLENECK, self.num_tokens, self.dropout_rate, self.layers, name="token_masking"
        )
        logits = mlp(nn.LayerNorm()(x), deterministic=deterministic)  # [..., N, k]
        weights = softmax_over_tokens(logits)  # [..., k, N]
        self.sow("intermediates", "weights", weights)
        return jnp.einsum("...kn,...nc->...kc", weights, x)


class TokenLearnerMHA(nn.Module):
    """`tl_mha`: k learned query tokens attend to the inputs with multi-head attention:
    `[..., N, c] -> [..., num_tokens, c]`."""

    num_tokens: int
    num_heads: int = 8
    layers: Layers = FLAX

    @nn.compact
    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        del deterministic  # The original applies no dropout here.
        shape = (1, self.num_tokens, x.shape[-1])
        tokens = self.param("tokens", nn.initializers.normal(0.02), shape)
        tokens = jnp.broadcast_to(tokens, x.shape[:-2] + shape[1:]).astype(x.dtype)
        attention = self.layers.MultiHeadAttention(
            num_heads=self.num_heads, deterministic=True, name="attn"
        )
        return attention(tokens, x)


class AddEraseWrite(nn.Module):
    """The original TTM's add/erase write (after Neural Turing Machines): selections w
    over the memory tokens from the memory, erase and add vectors e, a from the
    control (output) tokens, M' = M * prod_k(1 - w_k e_k) + mean_k(1 - w_k a_k).

    memory `[bs, m, c]`, control `[bs, r, c]` -> `[bs, m, c]`.
    """

    dropout_rate: float = 0.0
    layers: Layers = FLAX

    def _mlp(self, out_dim: int | None) -> MlpBlock:
        return MlpBlock(BOTTLENECK, out_dim, self.dropout_rate, self.layers)

    def _vectors(self, control: jax.Array, deterministic: bool) -> jax.Array:
        """`[bs, r, c] -> [bs, ADD_ERASE_TOKENS, c]`: mix over tokens, then channels."""
        v = jnp.swapaxes(nn.LayerNorm()(control), 1, 2)  # [bs, c, r]
        v = self._mlp(ADD_ERASE_TOKENS)(v, deterministic=deterministic)
        v = jnp.swapaxes(v, 1, 2)  # [bs, k, c]
        return self._mlp(None)(v, deterministic=deterministic)

    @nn.compact
    def __call__(self, memory: jax.Array, control: jax.Array, *, deterministic: bool) -> jax.Array:
        select = self._mlp(ADD_ERASE_TOKENS)(nn.LayerNorm()(memory), deterministic=deterministic)
        select = softmax_over_tokens(select)[..., None]  # [bs, k, m, 1]
        erase = self._vectors(control, deterministic)[:, :, None, :]  # [bs, k, 1, c]
        out = memory * jnp.prod(1.0 - select * erase, axis=1)
        add = self._vectors(control, deterministic)[:, :, None, :]
        return out + jnp.mean(1.0 - select * add, axis=1)


# Read/write learners by name: (spec, tokens out, layers) -> module.
LEARNERS: dict[str, Callable[..., nn.Module]] = {
    "tl": lambda s, k, ly: TokenLearner(k, s.tl_hidden_dim, s.dim, s.dropout, FORMS[s.form], ly),
    "tl_ttm": lambda s, k, ly: TokenLearnerTTM(k, s.dropout, ly),
    "tl_mha": lambda s, k, ly: TokenLearnerMHA(k, s.tl_mha_heads, ly),
}
# Writes: a learner, or the add/erase write of the current unit (TTM only).
WRITERS = {**LEARNERS, "add_erase": lambda s, k, ly: AddEraseWrite(s.dropout, ly)}
