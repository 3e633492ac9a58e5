"""One step of the memory recurrence, shared by LMTTM and TTM.

The memory is a ring of K units of W tokens. At step t, with c = t mod K the current
unit and the R read offsets `reads` (LMTTM: 0, -1, +1; TTM: K = 1 and the one
offset 0):

    Z_j = TL_read([M_c+o_j ; I_t] + PE_read),  j = 1..R         [bs, r, c] each
    O_t = Process([Z_1 ; ... ; Z_R])                             [bs, R r, c]
    M_c+1 <- TL_write([M_c+o_1 ; ... ; M_c+o_R ; I_t ; O_t] + PE_write)   [bs, W, c]
             or AddErase(M_c, O_t)

The ring is kept rotated so the current unit is slot 0: slot s of `[bs, K, ...]`
holds unit (t + s) mod K at step t, unit c + o is slot o mod K, and every index is
static. `scan_steps` scans the step: memory is the carry, the dropout RNG is split
per step, what a step `sow`s into `intermediates` is stacked along axis 1.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.blocks import PositionEmbedding
from lmttm_jax.models.layers import FLAX, Layers
from lmttm_jax.models.processing import PROCESSING_UNITS
from lmttm_jax.models.spec import ModelSpec
from lmttm_jax.models.token_learner import LEARNERS, WRITERS

# A carry: memory slots [bs, K, W, c] (slot s holds unit (t + s) mod K) and step t.
Carry = tuple[jax.Array, jax.Array]


def read_units(slots: jax.Array, offsets: tuple[int, ...]) -> jax.Array:
    """`[bs, K, W, ...]` slots -> `[bs, R, W, ...]` units c + o for the R `offsets`."""
    return jnp.stack([slots[:, o % slots.shape[1]] for o in offsets], axis=1)


def rotate_after_write(slots: jax.Array, written: jax.Array) -> jax.Array:
    """Stores `written` `[bs, W, ...]` as unit c+1 and makes it the current slot 0."""
    if slots.shape[1] == 1:
        return written[:, None]
    return jnp.concatenate([written[:, None], slots[:, 2:], slots[:, :1]], axis=1)


class MemoryStep(nn.Module):
    """One step: `(carry, I_t [bs, n, c]) -> (carry, O_t [bs, R r, c])`.

    `reads`: the read offsets from the current unit; `process_name`: the name of the
    processing unit's parameters. Sows (when `intermediates` is mutable) `memory`
    `[bs, K, W, c]` after the write, in unit order; `tl`/`tl_ttm` learners sow their
    `weights` (`read`: `[bs, R, r, W+n]`).
    """

    spec: ModelSpec
    reads: tuple[int, ...]
    process_name: str
    layers: Layers = FLAX

    def setup(self) -> None:
        s, ly = self.spec, self.layers
        self.read = LEARNERS[s.read](s, s.read_tokens, ly)
        self.process = PROCESSING_UNITS[s.form][s.processing](s, ly, name=self.process_name)
        self.write = WRITERS[s.write](s, s.memory_tokens, ly)
        if s.pos_embed:
            self.read_pos_embed = PositionEmbedding()
            self.write_pos_embed = PositionEmbedding()

    def embed(self, name: str, x: jax.Array) -> jax.Array:
        """`x` plus the position embedding `name` (`x` without embeddings)."""
        return getattr(self, name)(x) if self.spec.pos_embed else x

    def __call__(self, carry: Carry, inputs: jax.Array, train: bool) -> tuple[Carry, jax.Array]:
        slots, t = carry
        bs, n, c = inputs.shape
        det = not train
        units = read_units(slots, self.reads)  # [bs, R, W, c]
        per_read = jnp.broadcast_to(inputs[:, None], (bs, len(self.reads), n, c))
        x = jnp.concatenate([units, per_read], axis=2)  # [bs, R, W + n, c]
        z = self.read(self.embed("read_pos_embed", x), deterministic=det)  # [bs, R, r, c]
        out = self.process(z.reshape(bs, -1, c), deterministic=det)  # [bs, R r, c]
        if self.spec.write == "add_erase":
            written = self.write(units[:, 0], out, deterministic=det)
        else:
            x = jnp.concatenate([units.reshape(bs, -1, c), inputs, out], axis=1)  # [bs, RW+n+Rr, c]
            written = self.write(self.embed("write_pos_embed", x), deterministic=det)  # [bs, W, c]
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
