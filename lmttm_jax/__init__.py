"""Linked Memory Token Turing Machine (LMTTM) for 3D volumes, in JAX/Flax."""

from lmttm_jax import random_bits  # noqa: E402,F401  (straight-line Threefry on the CPU)
