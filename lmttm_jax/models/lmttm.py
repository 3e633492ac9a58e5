"""Linked Memory Token Turing Machine: a ring of K linked memory units.

At step t the current unit c = t mod K and its neighbours c-1, c+1 are each read
together with the slab's tokens I_t by one shared token learner:

    Z_j = TL_read([M_j ; I_t] + PE_read),  j in (c, c-1, c+1)      [bs, r, c]
    O_t = MDU([Z_c ; Z_c-1 ; Z_c+1])                                [bs, 3r, c]
    M_{c+1} <- TL_write([M_c ; M_c-1 ; M_c+1 ; I_t ; O_t] + PE_write)  [bs, W, c]

The ring is kept rotated so that the current unit is always slot 0 (c-1 is slot
K-1, c+1 is slot 1): every index in the step is static, and the rotation after
the write is a static concatenation. With K = 1 or 2 the neighbours coincide.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.lmttm_cached import CachedRecurrence
from lmttm_jax.models.mlp import PositionEmbedding
from lmttm_jax.models.processing import make_processing_unit
from lmttm_jax.models.recurrent import MemoryClassifier
from lmttm_jax.models.ring import read_units, rotate_after_write
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.token_learner import make_learner

# A carry: memory slots [bs, K, W, c] (slot s holds unit (t + s) mod K) and step t.
Carry = tuple[jax.Array, jax.Array]


class LinkedMemoryStep(nn.Module):
    """One LMTTM step: `(carry, I_t [bs, n, c]) -> (carry, O_t [bs, 3r, c])`.

    Sows (when `intermediates` is mutable) `memory` `[bs, K, W, c]` after the write,
    in unit order; `tl`/`tl_v11` learners sow their `weights` (`read`: `[bs, 3, r, W+n]`).
    """

    spec: ModelSpec

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, train: bool) -> tuple[Carry, jax.Array]:
        s, det = self.spec, not train
        slots, t = carry
        bs, n, c = inputs.shape
        units = read_units(slots)  # [bs, 3, W, c]
        reads = jnp.concatenate([units, jnp.broadcast_to(inputs[:, None], (bs, 3, n, c))], axis=2)
        if s.pos_embed:
            reads = PositionEmbedding(name="read_pos_embed")(reads)
        read = make_learner(
            s.read, s.read_tokens, s.tl_hidden_dim, s.dropout, s.tl_mha_heads, "read"
        )
        z = read(reads, deterministic=det)  # [bs, 3, r, c]
        out = make_processing_unit(
            s.processing, s.depth, s.num_heads, s.mlp_dim, s.dropout, s.share_weights, "mdu"
        )(z.reshape(bs, 3 * s.read_tokens, c), deterministic=det)  # [bs, 3r, c]

        writes = jnp.concatenate([units.reshape(bs, -1, c), inputs, out], axis=1)
        if s.pos_embed:
            writes = PositionEmbedding(name="write_pos_embed")(writes)
        write = make_learner(
            s.write, s.memory_tokens, s.tl_hidden_dim, s.dropout, s.tl_mha_heads, "write"
        )
        slots = rotate_after_write(slots, write(writes, deterministic=det))

        self.sow("intermediates", "memory", jnp.roll(slots, t + 1, axis=1))
        return (slots, t + 1), out


class LMTTM(MemoryClassifier):
    """LMTTM classifier: `[bs, D, H, W, C] -> {"logits": [bs, classes], ...}`."""

    step_cls = LinkedMemoryStep

    def setup(self) -> None:
        super().setup()
        s = self.spec
        shape = (1, s.num_units, s.memory_tokens, s.dim)
        if s.memory_init == "learned":
            self.memory = self.param("initial_memory", nn.initializers.normal(0.02), shape)
        else:
            self.memory = jnp.zeros(shape)

    def uses_cached(self) -> bool:
        """Whether this call runs the cached formulation (see `ModelSpec.cached`)."""
        s = self.spec
        return (
            s.cached
            and s.read == s.write == "tl"
            and not self.is_initializing()  # parameters are made by the direct one
            and not self.is_mutable_collection("intermediates")
        )

    def encode(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """`[bs, T, n, c] -> [bs, T, 3r, c]`, in the cached formulation where it applies."""
        if not self.uses_cached():
            return super().encode(tokens, train)
        params = self.variables["params"]["steps"]
        recurrence = CachedRecurrence(self.spec, params, tokens.shape[2])
        key = self.make_rng("dropout") if train and self.spec.dropout > 0 else None
        return recurrence(self.memory.astype(tokens.dtype), tokens, key)

    def initial_memory(self, batch_size: int) -> Carry:
        slots = jnp.broadcast_to(self.memory, (batch_size,) + self.memory.shape[1:])
        return slots, jnp.zeros((), jnp.int32)
