"""The LMTTM recurrence in its cached formulation (`kernels="cpu"`): the same function,
about half the FLOPs.

`MemoryStep` (step.py) is the direct formulation: at every step each of the R
reads runs the read token learner over `[M_j ; I_t] + PE` and the write runs the
write learner over `[M_c+o_1 ; ... ; M_c+o_R ; I_t ; O_t] + PE`. This module computes
the same outputs (to float rounding) with the same parameters and submodules, for
`tl` read and write learners, using three identities:

1. Per-token quantities of a token do not depend on the other tokens, so the
   slab's tokens are projected once for all the reads and the write.
2. A `tl` learner over `x + PE` needs one matmul per token, `x @ kernel`, whatever
   its position (`factor_token_learner`); position terms are computed once per call,
   and the read and write kernels are applied as one.
3. A memory unit's projections change only when it is written, and the position
   embedding of a unit's rows in a read does not depend on which unit it is. The
   scan carry keeps, per unit, its read logits and values and its write
   projections: each step projects only the slab's tokens, the output tokens and the
   one unit it writes. The initial memory is the same for every sample and is
   projected once per call.

Also: the last step's write is never read, so the last step runs the read and the
processing unit only. Dropout sits where the direct formulation has it (after each
learner and inside the processing unit); its random masks differ from the direct
formulation's, its distribution does not.

Shapes: bs batch, K units of W tokens, R reads, n slab tokens, r read tokens,
c width, h = `tl_hidden_dim`.
"""

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from lmttm_jax.models.blocks import softmax_over_tokens
from lmttm_jax.models.cpu.layers import broadcast_batch, exact_gelu, matmul, shared_add
from lmttm_jax.models.step import MemoryStep, read_units, rotate_after_write
from lmttm_jax.models.token_learner import TokenLearner


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


def factor_token_learner(learner: TokenLearner, pe: jax.Array) -> FactoredTokenLearner:
    """The bound `learner` over inputs `x + pe`, `pe [N, dim]`, factored."""
    empty = jnp.zeros((0, learner.dim), pe.dtype)
    # Zero tokens through every layer: makes the parameters at init, costs nothing.
    learner.value(empty), learner.attn_out(learner.attn_hidden(learner.norm(empty)))
    norm, hidden, out, value = (
        layer.variables["params"]
        for layer in (learner.norm, learner.attn_hidden, learner.attn_out, learner.value)
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
        pe_hidden=pe_proj[:, : learner.hidden_dim],
        pe_value=pe_proj[:, learner.hidden_dim :] + bias["value"],
        epsilon=learner.norm.epsilon,
    )


# Per unit [bs, K, W, .]: read logits (r), read values (c), write hidden (h) and values (c).
Cache = dict[str, jax.Array]
# The read and write learners, factored, and their kernels side by side [c, 2h + 2c].
Factored = tuple[FactoredTokenLearner, FactoredTokenLearner, jax.Array]


class CachedRecurrence(MemoryStep):
    """`memory [1, K, W, c]` (shared by the batch), tokens `[bs, T, n, c]` -> output
    tokens `[bs, T, R r, c]`: all steps, with `MemoryStep`'s submodules and parameters."""

    def setup(self) -> None:
        s = self.spec
        if (s.read, s.write) != ("tl", "tl"):
            raise ValueError(
                f"the cached formulation needs read='tl' and write='tl', got "
                f"read={s.read!r}, write={s.write!r}"
            )
        super().setup()
        self.dropout = self.layers.Dropout(s.dropout)

    def _embedding(self, name: str, rows: int, like: jax.Array) -> jax.Array:
        """The `[rows, c]` position embedding `name` (zeros without embeddings)."""
        zeros = jnp.zeros((rows, like.shape[-1]), like.dtype)
        return getattr(self, name)(zeros)[0] if self.spec.pos_embed else zeros

    def _project(self, x: jax.Array, kernel: jax.Array) -> list[jax.Array]:
        """`[..., m, c]` -> read hidden `[.., h]`, read value `[.., c]`, write hidden
        `[.., h]`, write value `[.., c]` (content parts, without position terms)."""
        h, c = self.spec.tl_hidden_dim, x.shape[-1]
        return jnp.split(matmul(x, kernel.astype(x.dtype)), (h, h + c, 2 * h + c), axis=-1)

    def _project_units(self, units: jax.Array, factored: Factored) -> Cache:
        """The cache `[..., W, .]` of memory units `[..., W, c]`."""
        read = factored[0]
        read_hidden, read_value, write_hidden, write_value = self._project(units, factored[2])
        rows = slice(0, units.shape[-2])
        return {
            "read_logits": read.logits(read.hidden(read_hidden, units, rows)),
            "read_values": read.values(read_value, rows),
            "write_hidden": write_hidden,
            "write_value": write_value,
        }

    def _read_and_process(
        self, cache: Cache, proj: list, inputs: jax.Array, read: FactoredTokenLearner, train: bool
    ) -> jax.Array:
        """The R reads and the processing unit: `-> O_t [bs, R r, c]`."""
        bs, n, c = inputs.shape
        unit_logits = read_units(cache["read_logits"], self.reads)  # [bs, R, W, r]
        w, r = unit_logits.shape[2:]
        rows = slice(w, w + n)
        in_logits = read.logits(read.hidden(proj[0], inputs, rows))  # [bs, n, r]
        in_values = read.values(proj[1], rows)  # [bs, n, c]
        per_read = jnp.broadcast_to(in_logits[:, None], (bs, len(self.reads), n, r))
        weights = softmax_over_tokens(jnp.concatenate([unit_logits, per_read], axis=2))
        unit_values = read_units(cache["read_values"], self.reads)  # [bs, R, W, c]
        z = jnp.einsum("bjkw,bjwc->bjkc", weights[..., :w], unit_values)
        z = z + jnp.einsum("bjkn,bnc->bjkc", weights[..., w:], in_values)  # [bs, R, r, c]
        z = self.dropout(z, deterministic=not train)
        return self.process(z.reshape(bs, -1, c), deterministic=not train)

    def _write_unit(
        self, slots: jax.Array, cache: Cache, proj: list, inputs: jax.Array, out: jax.Array,
        write: FactoredTokenLearner, train: bool,
    ) -> jax.Array:  # fmt: skip
        """The write: `-> [bs, W, c]`, the new content of the next unit."""
        bs, n, c = inputs.shape
        units = read_units(slots, self.reads).reshape(bs, -1, c)  # [bs, R W, c]
        rw = units.shape[1]
        out_hidden, out_value = jnp.split(
            matmul(out, write.kernel.astype(out.dtype)), [write.hidden_dim], axis=-1
        )
        unit_hidden = read_units(cache["write_hidden"], self.reads).reshape(bs, rw, -1)
        hidden = jnp.concatenate(
            [
                write.hidden(unit_hidden, units, slice(0, rw)),
                write.hidden(proj[2], inputs, slice(rw, rw + n)),
                write.hidden(out_hidden, out, slice(rw + n, None)),
            ],
            axis=1,
        )  # [bs, R W + n + R r, h]
        unit_value = read_units(cache["write_value"], self.reads).reshape(bs, rw, c)
        values = write.values(jnp.concatenate([unit_value, proj[3], out_value], 1), slice(None))
        weights = softmax_over_tokens(write.logits(hidden))  # [bs, W, R W + n + R r]
        written = jnp.einsum("bwn,bnc->bwc", weights, values)
        return self.dropout(written, deterministic=not train)

    def _step(
        self, carry: tuple, inputs: jax.Array, factored: Factored, train: bool
    ) -> tuple[tuple, jax.Array]:
        """A full step: read, process, write, project the written unit."""
        slots, cache = carry
        read, write, kernel = factored
        proj = self._project(inputs, kernel)
        out = self._read_and_process(cache, proj, inputs, read, train)
        new = self._write_unit(slots, cache, proj, inputs, out, write, train)
        new_cache = self._project_units(new, factored)
        cache = {name: rotate_after_write(cache[name], new_cache[name]) for name in cache}
        return (rotate_after_write(slots, new), cache), out

    def __call__(self, memory: jax.Array, tokens: jax.Array, train: bool) -> jax.Array:
        s, (bs, t, n, c) = self.spec, tokens.shape
        w, reads = memory.shape[2], len(self.reads)
        read = factor_token_learner(self.read, self._embedding("read_pos_embed", w + n, tokens))
        write_rows = reads * w + n + reads * s.read_tokens
        write_pe = self._embedding("write_pos_embed", write_rows, tokens)
        write = factor_token_learner(self.write, write_pe)
        factored = (read, write, jnp.concatenate([read.kernel, write.kernel], axis=1))

        def batch(a: jax.Array) -> jax.Array:
            return broadcast_batch(a, bs)

        carry = (batch(memory), jax.tree.map(batch, self._project_units(memory, factored)))
        tokens = jnp.swapaxes(tokens, 0, 1)  # [T, bs, n, c]
        outs = []
        if t > 1:  # every step but the last: its write would never be read

            def step(module: "CachedRecurrence", carry: tuple, x: jax.Array, f: Factored):
                return module._step(carry, x, f, train)

            if s.remat:
                step = nn.remat(step, prevent_cse=False)
            scan = nn.scan(
                step,
                variable_broadcast="params",
                split_rngs={"params": False, "dropout": True},
                in_axes=(0, nn.broadcast),
            )
            carry, out = scan(self, carry, tokens[:-1], factored)
            outs = [out]
        h = s.tl_hidden_dim
        kernel = factored[2][:, : h + c].astype(tokens.dtype)
        proj = jnp.split(matmul(tokens[-1], kernel), [h], -1)
        last = self._read_and_process(carry[1], proj, tokens[-1], read, train)
        return jnp.swapaxes(jnp.concatenate(outs + [last[None]]), 0, 1)  # [bs, T, R r, c]
