"""Classifier heads over the per-step output tokens `[bs, T, k, c]`."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lmttm_jax.models.forms import OURS, Form

HEADS = ("mean", "last", "per_step")


class Head(nn.Module):
    """Token pooling -> LayerNorm -> Dense (no LayerNorm in the PyTorch form):
    `[bs, T, k, c] -> {"logits": [bs, classes]}`.

    `mean` pools all steps' output tokens (the LMTTM reference), `last` the last
    step's; `per_step` also returns `"step_logits"` `[bs, T, classes]`, `Y^t = W_o
    LN(mean_k O^t)`, and predicts their mean over steps.
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
        step_logits = dense(norm(tokens.mean(axis=2)))  # per_step: [bs, T, classes]
        return {"logits": jnp.mean(step_logits, axis=1), "step_logits": step_logits}
