"""The ring of linked memory units, kept rotated so the current unit is slot 0.

Slot s of `[bs, K, ...]` holds unit (t + s) mod K at step t: the current unit is
slot 0, its predecessor slot K-1 and its successor slot 1. Every index is static.
"""

import jax
import jax.numpy as jnp


def read_slots(num_units: int) -> tuple[int, int, int]:
    """Slots of the current, previous and next unit."""
    return 0, num_units - 1, 1 % num_units


def read_units(slots: jax.Array) -> jax.Array:
    """`[bs, K, W, ...]` slots -> `[bs, 3, W, ...]` units (current, previous, next)."""
    return jnp.stack([slots[:, i] for i in read_slots(slots.shape[1])], axis=1)


def rotate_after_write(slots: jax.Array, written: jax.Array) -> jax.Array:
    """Stores `written` `[bs, W, ...]` as unit c+1 and makes it the current slot 0."""
    if slots.shape[1] == 1:
        return written[:, None]
    return jnp.concatenate([written[:, None], slots[:, 2:], slots[:, :1]], axis=1)
