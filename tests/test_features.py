"""Training features that are off by default: EMA of the weights, test-time augmentation."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmttm_jax import data as data_lib
from lmttm_jax import inference, train
from lmttm_jax.data import write_synthetic
from lmttm_jax.models import build_model
from tests import tiny
from tests.tiny import tiny_config


def small_state(config, seed=0):
    model = build_model(config.model, 2, config.data.size)
    return train.create_train_state(config, model, jax.random.key(seed), 4)


def batch(n=4, size=28, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (n, size, size, size), dtype=np.uint8)
    return {"image": jnp.asarray(image), "label": jnp.asarray(rng.integers(0, 2, n), jnp.int32)}


class_probs = jax.jit(inference.class_probs, static_argnums=0)


def eval_step(state, b, **kw):
    return train.eval_step(state.apply_fn, train.inference_params(state), b, **kw)


def step(state, b, ema_decay):
    kw = dict(flip=False, rot90=False, label_smoothing=0.0, ema_decay=ema_decay)
    return tiny.train_step(state, b, jax.random.key(1), **kw)


@pytest.mark.slow
def test_ema_follows_the_weights_and_changes_nothing_else(tmp_path):
    off = tiny_config(tmp_path)
    on = tiny_config(tmp_path, ema_decay=0.9)
    s_off, s_on = small_state(off), small_state(on)
    assert s_off.ema_params is None
    b = batch()
    n_off, loss_off = step(s_off, b, 0.0)
    n_on, loss_on = step(s_on, b, 0.9)
    assert loss_on == loss_off  # training itself is unchanged
    for a, c in zip(jax.tree.leaves(n_off.params), jax.tree.leaves(n_on.params), strict=True):
        np.testing.assert_array_equal(a, c)
    # step 0: decay min(0.9, 1/10) = 0.1, so the average is 0.1 old + 0.9 new
    old, new, ema = (jax.tree.leaves(t) for t in (s_on.params, n_on.params, n_on.ema_params))
    for o, p, e in zip(old, new, ema, strict=True):
        np.testing.assert_allclose(e, 0.1 * o + 0.9 * p, rtol=1e-6, atol=1e-7)
    assert not all(np.array_equal(o, p) for o, p in zip(old, new, strict=True))
    # evaluation uses the average: replacing it changes the probabilities
    shifted = n_on.replace(ema_params=jax.tree.map(lambda p: p * 0.5, n_on.ema_params))
    p1, p2 = eval_step(n_on, b)["probs"], eval_step(shifted, b)["probs"]
    assert not np.allclose(p1, p2)
    assert train.inference_params(n_off) is n_off.params


def test_tta_views_are_the_label_preserving_transforms():
    x = jnp.arange(2 * 4 * 4 * 4).reshape(2, 4, 4, 4, 1).astype(jnp.float32)
    for flip, rot90, count in ((False, False, 1), (True, False, 8), (False, True, 10)):
        views = data_lib.tta_views(x, flip, rot90)
        assert len(views) == count
        distinct = {np.asarray(v).tobytes() for v in views}
        assert len(distinct) == count  # no view twice
        for v in views:  # each sample keeps its voxels
            np.testing.assert_array_equal(np.sort(v.reshape(2, -1)), np.sort(x.reshape(2, -1)))
    assert len(data_lib.tta_views(x, True, True)) == 17


@pytest.mark.slow
def test_tta_averages_views_and_makes_the_prediction_flip_invariant(tmp_path):
    config = tiny_config(tmp_path)
    state = small_state(config)
    b = batch(n=3)
    x = data_lib.preprocess(b["image"])
    plain = eval_step(state, b)
    probs, logits = class_probs(state.apply_fn, state.params, x)
    # off: the old probabilities (two compiled programs: equal up to rounding)
    np.testing.assert_allclose(probs, plain["probs"], rtol=1e-6, atol=1e-7)
    tta = eval_step(state, b, tta=(True, False))
    manual = np.mean(
        [
            jax.nn.softmax(class_probs(state.apply_fn, state.params, v)[1][0])
            for v in data_lib.tta_views(x, True, False)
        ],
        axis=0,
    )
    np.testing.assert_allclose(tta["probs"], manual, rtol=1e-5, atol=1e-6)
    assert not np.allclose(tta["probs"], plain["probs"])
    flipped = {"image": jnp.flip(b["image"], 2), "label": b["label"]}
    np.testing.assert_allclose(
        eval_step(state, flipped, tta=(True, False))["probs"], tta["probs"], atol=1e-5
    )
    picked = np.take_along_axis(np.asarray(tta["probs"]), np.asarray(b["label"])[:, None], 1)
    np.testing.assert_allclose(tta["loss"], -np.log(picked[:, 0]), rtol=1e-5)


@pytest.mark.slow
def test_a_run_with_ema_and_tta_trains_resumes_and_predicts_with_them(tmp_path):
    root = tmp_path / "data"
    write_synthetic(
        root / "synthetic3d.npz", seed=0, size=28, n_samples={"train": 64, "val": 32, "test": 32}
    )
    config = tiny_config(root, epochs=1, ema_decay=0.5)
    config.data.flip, config.data.tta = True, True
    results = train.train_and_evaluate(config, tmp_path / "run")
    assert np.isfinite(results["test"]["auc"])
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["train"]["ema_decay"] == 0.5 and stored["data"]["tta"] is True
    run = inference.restore(tmp_path / "run")
    volume = np.random.default_rng(0).random((28, 28, 28), dtype=np.float32)
    probs = inference.predict_fn(run)(np.stack([volume, np.flip(volume, 0)]))
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-5)  # TTA: flip-invariant
