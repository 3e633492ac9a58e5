"""Training options for imbalanced classes: focal loss, class-weighted loss, balanced
batches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lmttm_jax import config as config_lib
from lmttm_jax import train
from lmttm_jax.data import preprocess, train_batches
from lmttm_jax.models import build_model
from tests import tiny
from tests.tiny import tiny_config


def test_focal_loss_is_the_cross_entropy_at_gamma_0_and_down_weights_easy_samples():
    logits = jnp.asarray([[2.0, -1.0], [0.1, 0.3], [-3.0, 3.0]])
    targets = jax.nn.one_hot(jnp.asarray([0, 1, 0]), 2)
    np.testing.assert_allclose(
        train.focal_loss(logits, targets, 0.0),
        optax.softmax_cross_entropy(logits, targets),
        rtol=1e-6,
    )
    p_true = np.take_along_axis(np.asarray(jax.nn.softmax(logits)), np.array([[0], [1], [0]]), 1)
    expected = -((1 - p_true[:, 0]) ** 2) * np.log(p_true[:, 0])
    focal = np.asarray(train.focal_loss(logits, targets, 2.0))
    np.testing.assert_allclose(focal, expected, rtol=1e-5)
    ce = np.asarray(optax.softmax_cross_entropy(logits, targets))
    ratio = focal / ce  # (1 - p_t)^2: the confident, right sample (0) shrinks most
    assert ratio[0] < ratio[1] < ratio[2] < 1


def test_balanced_class_weights_give_each_class_the_same_total_weight():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 4)
    weights = train.balanced_class_weights(labels, 3)
    np.testing.assert_allclose(weights, [12 / 18, 12 / 6, 12 / 12])
    per_class = [weights[c] * np.sum(labels == c) for c in range(3)]
    np.testing.assert_allclose(per_class, [4.0, 4.0, 4.0])
    assert train.balanced_class_weights(np.array([1, 1]), 2) == (0.0, 0.5)  # absent class


def test_balanced_batches_draw_each_class_equally_often_and_reproducibly():
    labels = np.array([0] * 90 + [1] * 10)
    images = np.arange(100)[:, None, None, None].astype(np.uint8)

    def drawn(epoch: int, balanced: bool) -> np.ndarray:
        batches = train_batches(images, labels, 10, seed=3, epoch=epoch, balanced=balanced)
        return np.concatenate([b["label"] for b in batches])

    plain = drawn(0, False)
    assert plain.mean() == pytest.approx(0.1)  # a permutation: each sample once
    balanced = np.concatenate([drawn(e, True) for e in range(20)])
    assert balanced.mean() == pytest.approx(0.5, abs=0.03)
    np.testing.assert_array_equal(drawn(5, True), drawn(5, True))
    assert not np.array_equal(drawn(5, True), drawn(6, True))


@pytest.mark.slow
def test_train_step_weights_each_samples_loss_by_its_class(tmp_path):
    config = tiny_config(tmp_path)  # no dropout: the loss is a function of the params
    model = build_model(config.model, 2, config.data.size)
    state = train.create_train_state(config, model, jax.random.key(0), 4)
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.integers(0, 255, (4, 28, 28, 28), dtype=np.uint8))
    batch = {"image": image, "label": jnp.asarray([0, 1, 1, 0], jnp.int32)}
    logits = state.apply_fn({"params": state.params}, preprocess(image), True)["logits"]
    per_sample = np.asarray(train.cross_entropy(logits, batch["label"]))
    kw = dict(flip=False, rot90=False, label_smoothing=0.0)
    _, plain = tiny.train_step(state, batch, jax.random.key(1), **kw)
    _, ones = tiny.train_step(state, batch, jax.random.key(1), **kw, class_weights=(1.0, 1.0))
    _, weighted = tiny.train_step(state, batch, jax.random.key(1), **kw, class_weights=(0.5, 3.0))
    np.testing.assert_allclose(plain, per_sample.mean(), rtol=1e-5)
    np.testing.assert_allclose(ones, plain, rtol=1e-6)
    expected = np.mean(per_sample * np.array([0.5, 3.0, 3.0, 0.5]))
    np.testing.assert_allclose(weighted, expected, rtol=1e-5)
    # keep_prior: the loss of the logits minus the log priors, i.e. of the same model
    # with its output bias lowered by them
    offset = train.log_prior(np.array([0] * 9 + [1]), 2)
    np.testing.assert_allclose(np.exp(offset), [0.9, 0.1], rtol=1e-6)
    _, kept = tiny.train_step(state, batch, jax.random.key(1), **kw, logit_offset=offset)
    head = state.params["head"]["logits"]
    lowered = {**head, "bias": head["bias"] - jnp.asarray(offset)}
    shifted = state.replace(
        params={**state.params, "head": {**state.params["head"], "logits": lowered}}
    )
    _, expected = tiny.train_step(shifted, batch, jax.random.key(1), **kw)
    np.testing.assert_allclose(kept, expected, rtol=1e-5)
    assert not np.allclose(kept, plain)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("class_balance", "oversample", "config.train.class_balance='oversample' is invalid"),
        ("focal_gamma", -1.0, "config.train.focal_gamma=-1.0 is invalid"),
        ("keep_prior", True, "config.train.keep_prior=True is invalid"),
    ],
)
def test_bad_class_balance_options_are_one_line_errors(tmp_path, field, value, message):
    config = tiny_config(tmp_path)
    config.train[field] = value
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate_config(config)
