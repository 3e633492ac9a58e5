"""TokenLearner read/write modules: summarise N tokens into k tokens.

All learners map `[..., N, c] -> [..., k, c]`; leading axes (batch, and the three
reads of LMTTM) are independent.
"""

from collections.abc import Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from lmttm_jax.models.dropout import Dropout, MultiHeadAttention
from lmttm_jax.models.matmul import Dense, matmul
from lmttm_jax.models.mlp import (
    MlpBlock,
    exact_gelu,
    shared_add,
    softmax_over_tokens,
    tanh_gelu,
)
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.variants import OURS, Form, model_form

# Bottleneck width of the original TokenLearner V11 and AddErase MLPs.
V11_BOTTLENECK = 64
# The original TTM builds its AddErase write with this many erase/add vectors.
ADD_ERASE_TOKENS = 8


class TokenLearner(nn.Module):
    """TokenLearner as the LMTTM reference uses it (`TL`).

    weights = softmax_N(MLP(LayerNorm(x))), values = GELU(Dense(x)) on the raw
    tokens, output = weights^T . values, then dropout. GELU is the erf form. The
    `form` gives the initialiser, the LayerNorm and whether the Dense layers have
    biases (ours: yes; the seed's: no).

    `[..., N, dim] -> [..., num_tokens, dim]`. `factored` gives the same arithmetic
    rearranged for the cached formulation of the memory recurrence.
    """

    num_tokens: int
    hidden_dim: int
    dim: int
    dropout_rate: float = 0.0
    form: Form = OURS

    def setup(self) -> None:
        f = self.form
        self.norm = f.layer_norm()
        self.attn_hidden = Dense(
            self.hidden_dim, use_bias=f.learner_bias, kernel_init=f.kernel_init
        )
        self.attn_out = Dense(self.num_tokens, use_bias=f.learner_bias, kernel_init=f.kernel_init)
        self.value = Dense(self.dim, use_bias=f.learner_bias, kernel_init=f.kernel_init)
        self.dropout = Dropout(self.dropout_rate)

    def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
        logits = self.attn_out(exact_gelu(self.attn_hidden(self.norm(x))))
        weights = softmax_over_tokens(logits)  # [..., k, N]
        self.sow("intermediates", "weights", weights)
        values = exact_gelu(self.value(x))  # [..., N, c]
        out = jnp.einsum("...kn,...nc->...kc", weights, values)
        return self.dropout(out, deterministic=deterministic)

    def factored(self, pe: jax.Array) -> "FactoredTokenLearner":
        """This learner over inputs `x + pe`, `pe [N, dim]`, as `FactoredTokenLearner`."""
        empty = jnp.zeros((0, self.dim), pe.dtype)
        # Zero tokens through every layer: makes the parameters at init, costs nothing.
        self.value(empty), self.attn_out(self.attn_hidden(self.norm(empty)))
        norm, hidden, out, value = (
            layer.variables["params"]
            for layer in (self.norm, self.attn_hidden, self.attn_out, self.value)
        )
        gamma = norm["scale"]
        kernel = jnp.concatenate([gamma[:, None] * hidden["kernel"], value["kernel"]], axis=1)
        pe_proj = pe @ kernel  # [N, h + c]
        bias = {  # zeros for bias-free layers
            name: layer.get("bias", jnp.zeros(layer["kernel"].shape[-1:], pe.dtype))
            for name, layer in (("hidden", hidden), ("out", out), ("value", value))
        }
        return FactoredTokenLearner(
            kernel=kernel,
            mean_dir=gamma @ hidden["kernel"],
            hidden_const=norm["bias"] @ hidden["kernel"] + bias["hidden"],
            out_kernel=out["kernel"],
            out_bias=bias["out"],
            pe=pe,
            pe_hidden=pe_proj[:, : self.hidden_dim],
            pe_value=pe_proj[:, self.hidden_dim :] + bias["value"],
            epsilon=self.norm.epsilon,
        )


def _ln_stats(y: jax.Array, epsilon: float) -> tuple[jax.Array, jax.Array]:
    """`[..., c]` -> mean and 1/sqrt(var + eps) over the last axis, `[..., 1]` each."""
    y = y.astype(jnp.promote_types(y.dtype, jnp.float32))
    mean = y.mean(-1, keepdims=True)
    var = jnp.square(y - mean).mean(-1, keepdims=True)
    return mean, jax.lax.rsqrt(var + epsilon)


@flax.struct.dataclass
class FactoredTokenLearner:
    """`TokenLearner` over inputs `x + pe`, rearranged so that a token's only matmul is
    its projection `x @ kernel`, wherever it sits and however often it is read.

    Linear maps distribute over `x + pe`, and LayerNorm followed by a Dense layer is
    `Dense(LN(x + pe)) = inv_std * ((x * gamma) W + (pe * gamma) W - mean * gamma W)
    + beta W + b`, with the mean and inverse standard deviation of `x + pe` per
    token. So `x @ [gamma W | Wv]` is all a token needs; the position terms are
    computed once. Shapes: N input rows, c width, h hidden width, k tokens out.
    """

    kernel: jax.Array  # [c, h + c]: the hidden layer with the LayerNorm scale, the value
    mean_dir: jax.Array  # [h]: gamma W
    hidden_const: jax.Array  # [h]: beta W + b
    out_kernel: jax.Array  # [h, k]
    out_bias: jax.Array  # [k]
    pe: jax.Array  # [N, c]
    pe_hidden: jax.Array  # [N, h]
    pe_value: jax.Array  # [N, c], with the value bias
    epsilon: float = flax.struct.field(pytree_node=False)

    @property
    def hidden_dim(self) -> int:
        return self.mean_dir.shape[0]

    def hidden(self, x_hidden: jax.Array, x: jax.Array, rows: slice) -> jax.Array:
        """`Dense(LN(x + pe))` of tokens at input rows `rows` from `x_hidden = (x*gamma) W`.

        `x_hidden [..., m, h]`, `x [..., m, c]` -> `[..., m, h]`.
        """
        mean, inv_std = _ln_stats(shared_add(x, self.pe[rows]), self.epsilon)
        pre = shared_add(x_hidden.astype(mean.dtype), self.pe_hidden[rows]) - mean * self.mean_dir
        return (inv_std * pre + self.hidden_const).astype(x.dtype)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """`[..., m, h]` pre-activations -> `[..., m, k]` token logits."""
        return matmul(exact_gelu(hidden), self.out_kernel) + self.out_bias

    def values(self, x_value: jax.Array, rows: slice) -> jax.Array:
        """`GELU(Dense(x + pe))` of tokens at rows `rows` from `x_value = x Wv`: `[..., m, c]`."""
        return exact_gelu(shared_add(x_value, self.pe_value[rows]))


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
        out = MultiHeadAttention(num_heads=self.num_heads, deterministic=True, name="attn")(
            tokens, x
        )
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


# Read/write learners by name: (spec, tokens out, module name) -> module.
LEARNERS: dict[str, Callable[[ModelSpec, int, str], nn.Module]] = {
    "tl": lambda s, k, name: TokenLearner(
        k, s.tl_hidden_dim, s.dim, s.dropout, model_form(s.variant), name=name
    ),
    "tl_v11": lambda s, k, name: TokenLearnerV11(k, s.dropout, name=name),
    "tl_mha": lambda s, k, name: TokenLearnerMHA(k, s.tl_mha_heads, name=name),
}
# Writes: a learner, or the add/erase write of the current unit (TTM only).
WRITERS = {**LEARNERS, "add_erase": lambda s, k, name: AddEraseWrite(s.dropout, name=name)}


def make_learner(kind: str, spec: ModelSpec, num_tokens: int, name: str) -> nn.Module:
    """The learner `kind` (a key of `LEARNERS`) of `spec`, making `num_tokens` tokens."""
    if kind not in LEARNERS:
        raise ValueError(f"unknown token learner {kind!r}; expected one of {tuple(LEARNERS)}")
    return LEARNERS[kind](spec, num_tokens, name)
