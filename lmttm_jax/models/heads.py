"""Classifier heads over the per-step output tokens `[bs, T, k, c]`."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.forms import OURS, Form

HEADS = ("mean", "last", "per_step")


class Head(nn.Module):
    """Token pooling -> LayerNorm -> Dense (no LayerNorm in the PyTorch form).

    - `mean`: mean over all steps' output tokens (the LMTTM reference);
    - `last`: mean over the last step's tokens;
    - `per_step`: logits `Y^t = W_o LN(mean_k O^t)` for every step; the prediction
      is their mean over steps.

    `[bs, T, k, c] -> {"logits": [bs, classes]}` plus `"step_logits": [bs, T, classes]`
    for `per_step`.
    """

    kind: str
    num_classes: int
    form: Form = OURS

    @nn.compact
    def __call__(self, tokens: jax.Array) -> dict[str, jax.Array]:
        f = self.form
        norm = f.layer_norm("norm") if f.head_norm else lambda x: x
        dense = nn.Dense(self.num_classes, kernel_init=f.kernel_init, name="logits")
        if self.kind == "mean":
            return {"logits": dense(norm(tokens.mean(axis=(1, 2))))}
        if self.kind == "last":
            return {"logits": dense(norm(tokens[:, -1].mean(axis=1)))}
        if self.kind == "per_step":
            step_logits = dense(norm(tokens.mean(axis=2)))
            return {"logits": jnp.mean(step_logits, axis=1), "step_logits": step_logits}
        raise ValueError(f"unknown head {self.kind!r}; expected one of {HEADS}")
