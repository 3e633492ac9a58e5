"""The ring of K linked memory units, kept rotated so the current unit is slot 0.

Slot s of `[bs, K, ...]` holds unit (t + s) mod K at step t: the current unit c is
slot 0, unit c + o is slot o mod K. Every index is static.
"""

import jax
import jax.numpy as jnp


def read_units(slots: jax.Array, offsets: tuple[int, ...]) -> jax.Array:
    """`[bs, K, W, ...]` slots -> `[bs, R, W, ...]` units c + o for the R `offsets`."""
    return jnp.stack([slots[:, o % slots.shape[1]] for o in offsets], axis=1)


def rotate_after_write(slots: jax.Array, written: jax.Array) -> jax.Array:
    """Stores `written` `[bs, W, ...]` as unit c+1 and makes it the current slot 0."""
    if slots.shape[1] == 1:
        return written[:, None]
    return jnp.concatenate([written[:, None], slots[:, 2:], slots[:, :1]], axis=1)
