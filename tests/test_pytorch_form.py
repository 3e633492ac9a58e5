"""The PyTorch form of LMTTM (`model.form="pytorch"`, the LMTTM authors' PyTorch
model): its config rules, its initialisation, and a short training run. Its outputs
against the PyTorch model's own are checked in `test_lmttm_fidelity.py`."""

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest

from lmttm_jax import config as config_lib
from lmttm_jax import train
from lmttm_jax.data import write_synthetic
from lmttm_jax.models import LMTTM, ModelSpec
from tests.tiny import tiny_config

SPEC = ModelSpec(
    form="pytorch",
    dim=32,
    num_units=3,
    memory_tokens=4,
    read_tokens=2,
    tl_hidden_dim=32,
    depth=3,
    num_heads=8,
    mlp_dim=96,
    share_weights=True,
    memory_init="zeros",
)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    sizes = {"train": 64, "val": 16, "test": 16}
    write_synthetic(root / "synthetic3d.npz", seed=0, size=28, n_samples=sizes)
    return root


def pytorch_config(root: Path, **model):
    config = tiny_config(root, epochs=1, eval_batch_size=16)
    config.model.update(dict(form="pytorch", memory_init="zeros") | model)
    return config


def test_default_config_is_ours_and_old_configs_load(tmp_path):
    config = tiny_config(tmp_path)
    assert config.model.form == "ours"
    raw = config.to_dict()
    del raw["model"]["form"]  # a run's config.json from before the field existed
    assert config_lib.validate_config(raw).model.form == "ours"


@pytest.mark.parametrize(
    "model,message",
    [
        (dict(form="torch"), "config.model.form='torch'"),
        (dict(processing="mixer"), "config.model.processing='mixer' is invalid: expected one of"),
        (dict(read="tl_ttm"), "config.model.read='tl_ttm'"),
        (dict(write="tl_mha"), "config.model.write='tl_mha'"),
        (dict(tokenizer="conv"), "config.model.tokenizer='conv'"),
        (dict(name="ttm", write="tl"), "config.model.name='ttm'"),
    ],
)
def test_config_rules(tmp_path, model, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate_config(pytorch_config(tmp_path, **model))


def test_pytorch_mlp_unit_may_share_weights(tmp_path):
    checked = config_lib.validate_config(pytorch_config(tmp_path, processing="mlp"))
    assert checked.model.share_weights
    ours = tiny_config(tmp_path)
    ours.model.processing = "mlp"
    with pytest.raises(config_lib.ConfigError, match="config.model.share_weights=True"):
        config_lib.validate_config(ours)


def leaves(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(k.key for k in path): np.asarray(v) for path, v in flat}


def xavier_bound(fan_in: int, fan_out: int) -> float:
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_initialisation_is_pytorchs():
    """Xavier-uniform kernels (attention's in_proj over the stacked [3c, c]), zero
    biases, LayerNorms 1 and 0, no learner biases, no head LayerNorm."""
    x = np.zeros((2, 9, 9, 9, 1), np.float32)
    params = leaves(LMTTM(SPEC, 3).init(jax.random.key(0), x)["params"])
    c, p, f = SPEC.dim, SPEC.patch_size, SPEC.mlp_dim
    layer = "steps/mdu/layer/"
    bounds = {
        "tokenizer/patch/kernel": xavier_bound(p**3, c * p**3),
        "steps/read/attn_hidden/kernel": xavier_bound(c, c),
        "steps/read/attn_out/kernel": xavier_bound(c, SPEC.read_tokens),
        "steps/write/attn_out/kernel": xavier_bound(c, SPEC.memory_tokens),
        layer + "attention/query/kernel": xavier_bound(c, 3 * c),
        layer + "attention/value/kernel": xavier_bound(c, 3 * c),
        layer + "attention/out/kernel": xavier_bound(c, c),
        layer + "linear1/kernel": xavier_bound(c, f),
        layer + "linear2/kernel": xavier_bound(f, c),
        "head/logits/kernel": xavier_bound(c, 3),
    }
    for name, bound in bounds.items():
        value = np.abs(params[name])
        assert value.max() <= bound and value.max() > 0.8 * bound, name
    for name, value in params.items():
        if name.endswith("bias"):
            assert not value.any(), name
        if name.endswith("scale"):
            assert (value == 1).all(), name
    assert "steps/read/value/bias" not in params and "head/norm/scale" not in params
    norms = [k for k in params if k.endswith("scale")]
    assert sorted(norms) == sorted(
        f"{prefix}/scale"
        for prefix in ("steps/read/norm", "steps/write/norm", layer + "norm1", layer + "norm2")
    )


@pytest.mark.slow
def test_pytorch_form_trains_one_epoch(synthetic_root, tmp_path):
    results = train.train_and_evaluate(pytorch_config(synthetic_root), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model"]["form"] == "pytorch"
    assert np.isfinite(results["val"]["loss"]) and 0.0 <= results["test"]["auc"] <= 1.0
