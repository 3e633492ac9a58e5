"""Linked Memory Token Turing Machine (LMTTM) for 3D volumes, in JAX/Flax."""
