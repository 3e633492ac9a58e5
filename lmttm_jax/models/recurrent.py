"""What LMTTM and TTM share: tokenizer -> memory recurrence -> head.

Both run one step family over the depth steps. The memory is a ring of K units of
W tokens (`ring.py`); at step t, with c = t mod K the current unit and the R read
offsets `reads` (LMTTM: 0, -1, +1; TTM: K = 1 and the one offset 0):

    Z_j = TL_read([M_c+o_j ; I_t] + PE_read),  j = 1..R         [bs, r, c] each
    O_t = Process([Z_1 ; ... ; Z_R])                             [bs, R r, c]
    M_c+1 <- TL_write([M_c+o_1 ; ... ; M_c+o_R ; I_t ; O_t] + PE_write)   [bs, W, c]
             or AddErase(M_c, O_t)

The recurrence has two formulations of the same function, chosen when the model is
built (`cached`): `MemoryStep` is the direct one, scanned with `flax.linen.scan`
(memory is the carry, parameters are broadcast to every step, the dropout RNG is
split per step, whatever a step `sow`s into `intermediates` is stacked along axis
1, steps); `CachedRecurrence` (`lmttm_cached.py`) computes the same outputs with
about half the FLOPs, for `tl` read and write learners, and sows nothing.
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.heads import Head
from lmttm_jax.models.lmttm_cached import CachedRecurrence
from lmttm_jax.models.mlp import PositionEmbedding
from lmttm_jax.models.processing import make_processing_unit
from lmttm_jax.models.ring import read_units, rotate_after_write
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.token_learner import AddEraseWrite, make_learner
from lmttm_jax.models.tokenizer import make_tokenizer
from lmttm_jax.models.variants import model_form

# A carry: memory slots [bs, K, W, c] (slot s holds unit (t + s) mod K) and step t.
Carry = tuple[jax.Array, jax.Array]

MEMORY_INITS = ("learned", "zeros")  # `ModelSpec.memory_init`


class MemoryStep(nn.Module):
    """One step, direct formulation: `(carry, I_t [bs, n, c]) -> (carry, O_t [bs, R r, c])`.

    `reads`: the read offsets from the current unit; `process_name`: the name of the
    processing unit's parameters. Sows (when `intermediates` is mutable) `memory`
    `[bs, K, W, c]` after the write, in unit order; `tl`/`tl_v11` learners sow their
    `weights` (`read`: `[bs, R, r, W+n]`).
    """

    spec: ModelSpec
    reads: tuple[int, ...]
    process_name: str

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array, train: bool) -> tuple[Carry, jax.Array]:
        s, det = self.spec, not train
        slots, t = carry
        bs, n, c = inputs.shape
        units = read_units(slots, self.reads)  # [bs, R, W, c]
        per_read = jnp.broadcast_to(inputs[:, None], (bs, len(self.reads), n, c))
        reads = jnp.concatenate([units, per_read], axis=2)  # [bs, R, W + n, c]
        if s.pos_embed:
            reads = PositionEmbedding(name="read_pos_embed")(reads)
        z = make_learner(s.read, s, s.read_tokens, "read")(reads, deterministic=det)
        process = make_processing_unit(s, self.process_name)
        out = process(z.reshape(bs, -1, c), deterministic=det)  # [bs, R r, c]

        if s.write == "add_erase":
            written = AddEraseWrite(s.dropout, name="write")(units[:, 0], out, deterministic=det)
        else:
            writes = jnp.concatenate([units.reshape(bs, -1, c), inputs, out], axis=1)
            if s.pos_embed:
                writes = PositionEmbedding(name="write_pos_embed")(writes)
            write = make_learner(s.write, s, s.memory_tokens, "write")
            written = write(writes, deterministic=det)  # [bs, W, c]
        slots = rotate_after_write(slots, written)

        self.sow("intermediates", "memory", jnp.roll(slots, t + 1, axis=1))
        return (slots, t + 1), out


def scan_steps(remat: bool = False) -> type[nn.Module]:
    """`MemoryStep` lifted to a scan over axis 1 of its inputs (with `remat`, each
    step's activations are recomputed in the backward pass)."""
    step = nn.remat(MemoryStep, static_argnums=(3,), prevent_cse=False) if remat else MemoryStep
    return nn.scan(
        step,
        variable_broadcast="params",
        variable_axes={"intermediates": 1},
        split_rngs={"params": False, "dropout": True},
        in_axes=(1, nn.broadcast),
        out_axes=1,
    )


class MemoryClassifier(nn.Module):
    """Base of the memory-token classifiers.

    `[bs, D, H, W, C] volumes -> {"logits": [bs, classes], ...}` (see `Head`).
    `encode` gives the per-step output tokens `[bs, T, R r, c]` before the head.
    A subclass gives the read offsets, the processing unit's name and the shape of
    its stored initial memory. `cached` picks the formulation of the recurrence (it
    needs `tl` read and write learners); both have the same parameters.
    """

    spec: ModelSpec
    num_classes: int
    cached: bool = False
    reads: ClassVar[tuple[int, ...]]
    process_name: ClassVar[str]

    def memory_shape(self) -> tuple[int, ...]:
        """Shape of the `initial_memory` parameter (K W tokens of width c)."""
        raise NotImplementedError

    def setup(self) -> None:
        s = self.spec
        self.tokenizer = make_tokenizer(s)
        self.head = Head(s.head, self.num_classes, model_form(s.variant))
        shape = self.memory_shape()
        if s.memory_init == "learned":
            memory = self.param("initial_memory", nn.initializers.normal(0.02), shape)
        else:
            memory = jnp.zeros(shape)
        self.memory = memory.reshape(1, -1, s.memory_tokens, s.dim)  # [1, K, W, c]
        if self.cached:
            self.steps = CachedRecurrence(s, self.reads, self.process_name, name="steps")
        else:
            self.steps = scan_steps(s.remat)(s, self.reads, self.process_name, name="steps")

    def initial_memory(self, batch_size: int) -> Carry:
        """The direct formulation's initial carry for a batch (nothing shared)."""
        slots = jnp.broadcast_to(self.memory, (batch_size,) + self.memory.shape[1:])
        return slots, jnp.zeros((), jnp.int32)

    def encode(self, tokens: jax.Array, train: bool = False) -> jax.Array:
        """Runs the recurrence: `[bs, T, n, c] -> [bs, T, R r, c]` output tokens."""
        if self.cached:
            return self.steps(self.memory.astype(tokens.dtype), tokens, train)
        slots, t = self.initial_memory(tokens.shape[0])
        _, out = self.steps((slots.astype(tokens.dtype), t), tokens, train)
        return out

    def tokenize(self, volumes: jax.Array) -> jax.Array:
        """`[bs, D, H, W, C] -> [bs, T, n, c]` input tokens, one step per depth slab."""
        if volumes.ndim != 5:
            raise ValueError(
                f"volumes must be [batch, D, H, W, C], got shape {tuple(volumes.shape)}"
            )
        if min(volumes.shape[1:4]) < self.spec.patch_size:
            raise ValueError(
                f"model.patch_size={self.spec.patch_size} is larger than the volume "
                f"{tuple(volumes.shape[1:4])}"
            )
        return self.tokenizer(volumes)

    def __call__(self, volumes: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        return self.head(self.encode(self.tokenize(volumes), train))
