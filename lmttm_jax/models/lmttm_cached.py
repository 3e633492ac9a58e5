"""LMTTM's recurrence in its cached formulation: the same function, fewer FLOPs.

`LinkedMemoryStep` (lmttm.py) is the direct formulation: at every step the three
reads each run the read token learner over `[M_j ; I_t] + PE` and the write runs
the write learner over `[M_c ; M_c-1 ; M_c+1 ; I_t ; O_t] + PE`. This module
computes exactly the same outputs (to float rounding) from the same parameters,
using three identities of the `tl` learner (LayerNorm -> Dense -> GELU -> Dense
logits, GELU(Dense) values):

1. Per-token quantities of a token do not depend on the other tokens, so the
   slab's tokens are projected once for the three reads, not three times.
2. Linear maps distribute over `x + PE`, and LayerNorm followed by a Dense layer is
   `Dense(LN(x + pe)) = inv_std * ((x * gamma) W + (pe * gamma) W - mean * gamma W)
   + beta W + b`, with the mean and inverse standard deviation of `x + pe` per
   token. So the only matmul a token needs is `x @ [gamma_r W1_r | Wv_r | gamma_w
   W1_w | Wv_w]`, whatever its position; position terms are computed once per call.
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

Shapes: bs batch, K units of W tokens, n slab tokens, r read tokens, c width,
h = `tl_hidden_dim`.
"""

from typing import Any

import jax
import jax.numpy as jnp

from lmttm_jax.models.mlp import exact_gelu, softmax_over_tokens
from lmttm_jax.models.processing import make_processing_unit
from lmttm_jax.models.ring import read_units, rotate_after_write
from lmttm_jax.models.spec import ModelSpec

LAYER_NORM_EPS = 1e-6  # flax.linen.LayerNorm's default epsilon
Params = dict[str, Any]


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


def _ln_stats(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[..., c]` -> mean and 1/sqrt(var + eps) over the last axis, `[..., 1]` each."""
    y = y.astype(jnp.promote_types(y.dtype, jnp.float32))
    mean = y.mean(-1, keepdims=True)
    var = jnp.square(y - mean).mean(-1, keepdims=True)
    return mean, jax.lax.rsqrt(var + LAYER_NORM_EPS)


class Learner:
    """The `tl` learner's parameters, rearranged for the cached formulation.

    `p`: the learner's parameter dict (`norm`, `attn_hidden`, `attn_out`, `value`);
    `pe`: the position embedding `[N, c]` of its input rows.
    """

    def __init__(self, p: Params, pe: jax.Array):
        self.p = p
        gamma = p["norm"]["scale"]
        self.hidden_kernel = gamma[:, None] * p["attn_hidden"]["kernel"]  # [c, h]
        self.value_kernel = p["value"]["kernel"]  # [c, c]
        self.mean_dir = gamma @ p["attn_hidden"]["kernel"]  # [h]
        self.hidden_const = (
            p["norm"]["bias"] @ p["attn_hidden"]["kernel"] + p["attn_hidden"]["bias"]
        )  # [h]
        self.pe = pe
        self.pe_hidden = pe @ self.hidden_kernel  # [N, h]
        self.pe_value = pe @ self.value_kernel + p["value"]["bias"]  # [N, c]

    def hidden(self, x_hidden: jax.Array, x: jax.Array, rows: slice) -> jax.Array:
        """`Dense(LN(x + pe))` of tokens at positions `rows` from `x_hidden = (x*gamma) W`.

        `x_hidden [..., m, h]`, `x [..., m, c]` -> `[..., m, h]`.
        """
        mean, inv_std = _ln_stats(shared_add(x, self.pe[rows]))
        pre = shared_add(x_hidden.astype(mean.dtype), self.pe_hidden[rows]) - mean * self.mean_dir
        return (inv_std * pre + self.hidden_const).astype(x.dtype)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """`[..., m, h]` pre-activations -> `[..., m, k]` token logits."""
        out = self.p["attn_out"]
        return exact_gelu(hidden) @ out["kernel"] + out["bias"]

    def values(self, x_value: jax.Array, rows: slice) -> jax.Array:
        """`GELU(Dense(x + pe))` from `x_value = x Wv`: `[..., m, c]`."""
        return exact_gelu(shared_add(x_value, self.pe_value[rows]))


def _position_embedding(params: Params, name: str, shape: tuple[int, int]) -> jax.Array:
    """The `[N, c]` position embedding of a learner's inputs (zeros without one)."""
    if name not in params:
        return jnp.zeros(shape, params["read"]["value"]["kernel"].dtype)
    return params[name]["pos_embedding"][0]


def _dropout(key: jax.Array | None, rate: float, x: jax.Array) -> jax.Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


class CachedRecurrence:
    """The LMTTM recurrence: `[bs, T, n, c]` tokens -> `[bs, T, 3r, c]` output tokens.

    `params`: the `steps` parameters of an LMTTM, as the direct formulation has them.
    """

    def __init__(self, spec: ModelSpec, params: Params, n: int):
        s, w = spec, spec.memory_tokens
        self.spec = spec
        read_pe = _position_embedding(params, "read_pos_embed", (w + n, s.dim))
        write_pe = _position_embedding(
            params, "write_pos_embed", (3 * w + n + 3 * s.read_tokens, s.dim)
        )
        self.read = Learner(params["read"], read_pe)
        self.write = Learner(params["write"], write_pe)
        self.read_rows = {"unit": slice(0, w), "input": slice(w, w + n)}
        self.write_rows = {
            "unit": slice(0, 3 * w),
            "input": slice(3 * w, 3 * w + n),
            "output": slice(3 * w + n, None),
        }
        # [c, 2h + 2c]: every projection a new token needs, in one matmul.
        read_kernel = [self.read.hidden_kernel, self.read.value_kernel]
        self.write_kernel = jnp.concatenate([self.write.hidden_kernel, self.write.value_kernel], 1)
        self.kernel = jnp.concatenate(read_kernel + [self.write_kernel], axis=1)
        h = s.tl_hidden_dim
        self.splits = (h, h + s.dim, 2 * h + s.dim)
        self.mdu_params = params["mdu"]
        self.mdu = make_processing_unit(
            s.processing,
            s.depth,
            s.num_heads,
            s.mlp_dim,
            s.dropout,
            s.share_weights,
            "mdu",
            parent=None,
        )

    def project(self, x: jax.Array) -> list[jax.Array]:
        """`[..., m, c]` -> read hidden `[.., h]`, read value `[.., c]`, write hidden
        `[.., h]`, write value `[.., c]` (content parts, without position terms)."""
        return jnp.split(x @ self.kernel.astype(x.dtype), self.splits, axis=-1)

    def project_units(self, units: jax.Array) -> dict[str, jax.Array]:
        """The cache of memory units `[..., W, c]`: read logits `[..., W, r]`, read
        values `[..., W, c]`, write hidden `[..., W, h]` and write value `[..., W, c]`."""
        read_hidden, read_value, write_hidden, write_value = self.project(units)
        rows = self.read_rows["unit"]
        return {
            "read_logits": self.read.logits(self.read.hidden(read_hidden, units, rows)),
            "read_values": self.read.values(read_value, rows),
            "write_hidden": write_hidden,
            "write_value": write_value,
        }

    def read_and_process(
        self, cache: dict, proj: list, inputs: jax.Array, keys: jax.Array | None
    ) -> jax.Array:
        """The three reads and the processing unit: `-> O_t [bs, 3r, c]`."""
        bs, n, c = inputs.shape
        r, rows = self.spec.read_tokens, self.read_rows["input"]
        in_logits = self.read.logits(self.read.hidden(proj[0], inputs, rows))  # [bs, n, r]
        in_values = self.read.values(proj[1], rows)  # [bs, n, c]
        unit_logits = read_units(cache["read_logits"])  # [bs, 3, W, r]
        logits = jnp.concatenate(
            [unit_logits, jnp.broadcast_to(in_logits[:, None], (bs, 3, n, r))], axis=2
        )
        weights = softmax_over_tokens(logits)  # [bs, 3, r, W + n]
        w = unit_logits.shape[2]
        z = jnp.einsum("bjkw,bjwc->bjkc", weights[..., :w], read_units(cache["read_values"]))
        z = z + jnp.einsum("bjkn,bnc->bjkc", weights[..., w:], in_values)  # [bs, 3, r, c]
        z = _dropout(None if keys is None else keys[0], self.spec.dropout, z)
        rngs = {} if keys is None else {"dropout": keys[1]}
        return self.mdu.apply(
            {"params": self.mdu_params},
            z.reshape(bs, 3 * r, c),
            deterministic=keys is None,
            rngs=rngs,
        )

    def write_unit(
        self,
        slots: jax.Array,
        cache: dict,
        proj: list,
        inputs: jax.Array,
        out: jax.Array,
        key: jax.Array | None,
    ) -> jax.Array:
        """The write: `-> [bs, W, c]`, the new content of the next unit."""
        bs, _, w, c = slots.shape
        wr, rows = self.write, self.write_rows
        out_hidden, out_value = jnp.split(
            out @ self.write_kernel.astype(out.dtype), [self.spec.tl_hidden_dim], axis=-1
        )
        unit_hidden = read_units(cache["write_hidden"]).reshape(bs, 3 * w, -1)
        units = read_units(slots).reshape(bs, 3 * w, c)
        hidden = jnp.concatenate(
            [
                wr.hidden(unit_hidden, units, rows["unit"]),
                wr.hidden(proj[2], inputs, rows["input"]),
                wr.hidden(out_hidden, out, rows["output"]),
            ],
            axis=1,
        )  # [bs, 3W + n + 3r, h]
        unit_value = read_units(cache["write_value"]).reshape(bs, 3 * w, c)
        values = wr.values(jnp.concatenate([unit_value, proj[3], out_value], 1), slice(None))
        weights = softmax_over_tokens(wr.logits(hidden))  # [bs, W, 3W + n + 3r]
        return _dropout(key, self.spec.dropout, jnp.einsum("bwn,bnc->bwc", weights, values))

    def step(self, carry: tuple, xs: tuple) -> tuple[tuple, jax.Array]:
        """A full step: read, process, write, project the written unit."""
        (slots, cache), (inputs, keys) = carry, xs
        proj = self.project(inputs)
        out = self.read_and_process(cache, proj, inputs, None if keys is None else keys[:2])
        new = self.write_unit(slots, cache, proj, inputs, out, None if keys is None else keys[2])
        new_cache = self.project_units(new)
        cache = {name: rotate_after_write(cache[name], new_cache[name]) for name in cache}
        return (rotate_after_write(slots, new), cache), out

    def __call__(self, memory: jax.Array, tokens: jax.Array, key: jax.Array | None) -> jax.Array:
        """`memory [1 or bs, K, W, c]`, `tokens [bs, T, n, c]`, dropout `key` (None: eval)."""
        bs, t = tokens.shape[:2]
        batch = lambda a: broadcast_batch(a, bs)  # noqa: E731
        carry = (batch(memory), jax.tree.map(batch, self.project_units(memory)))
        tokens = jnp.swapaxes(tokens, 0, 1)  # [T, bs, n, c]
        keys = None if key is None else jax.random.split(key, (t, 3))
        step = jax.checkpoint(self.step, prevent_cse=False) if self.spec.remat else self.step
        outs = []
        if t > 1:  # every step but the last: its write would never be read
            xs = (tokens[:-1], None if keys is None else keys[:-1])
            carry, outs = jax.lax.scan(step, carry, xs)
            outs = [outs]
        proj = jnp.split(tokens[-1] @ self.kernel[:, : self.splits[1]], self.splits[:1], -1)
        last = self.read_and_process(carry[1], proj, tokens[-1], None if keys is None else keys[-1])
        return jnp.swapaxes(jnp.concatenate(outs + [last[None]]), 0, 1)  # [bs, T, 3r, c]
