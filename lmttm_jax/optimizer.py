"""The optimiser and learning-rate schedule of `config.train`, by name."""

from collections.abc import Callable

import ml_collections
import optax

Config = ml_collections.ConfigDict


def _cosine(tc: Config, steps_per_epoch: int) -> optax.Schedule:
    """Linear warmup over `warmup_epochs`, then cosine decay to 0 at the last step."""
    total = max(tc.epochs * steps_per_epoch, 1)
    warmup = min(tc.warmup_epochs * steps_per_epoch, total - 1)
    return optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, warmup, total)


SCHEDULES: dict[str, Callable[[Config, int], optax.Schedule]] = {
    "cosine": _cosine,
    "constant": lambda tc, steps_per_epoch: optax.constant_schedule(tc.learning_rate),
}
OPTIMIZERS: dict[str, Callable[[optax.Schedule, Config], optax.GradientTransformation]] = {
    "adamw": lambda lr, tc: optax.adamw(lr, weight_decay=tc.weight_decay),  # decoupled decay
    "adam": lambda lr, tc: optax.adam(lr),
}


def learning_rate_schedule(tc: Config, steps_per_epoch: int) -> optax.Schedule:
    """The schedule `tc.schedule` of `config.train`."""
    return SCHEDULES[tc.schedule](tc, steps_per_epoch)


def make_optimizer(tc: Config, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimiser `tc.optimizer` on its schedule, after global-norm clipping."""
    opt = OPTIMIZERS[tc.optimizer](learning_rate_schedule(tc, steps_per_epoch), tc)
    return optax.chain(optax.clip_by_global_norm(tc.grad_clip), opt) if tc.grad_clip > 0 else opt
