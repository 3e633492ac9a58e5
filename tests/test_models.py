"""Behaviour of the LMTTM and TTM modules (CPU, small sizes)."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lmttm_jax.models import KERNELS, LMTTM, TTM, ModelSpec, build_model, resolve_kernels
from lmttm_jax.models.layers import FLAX
from lmttm_jax.models.recurrent import layer_set
from lmttm_jax.models.step import MemoryStep

TINY = ModelSpec(
    dim=32,
    num_units=4,
    memory_tokens=8,
    read_tokens=4,
    tl_hidden_dim=32,
    tl_mha_heads=4,
    depth=2,
    num_heads=4,
    mlp_dim=64,
    dropout=0.1,
)


def volumes(shape, seed=0):
    return jax.random.uniform(jax.random.key(seed), shape)


def init(model, x):
    return jax.jit(model.init)(jax.random.key(0), x)


SHAPE_CASES = [
    (LMTTM, dict()),
    (LMTTM, dict(read="tl_ttm", write="tl_mha", processing="mixer", head="last")),
    (LMTTM, dict(read="tl_mha", write="tl_ttm", processing="mlp", head="per_step")),
    (LMTTM, dict(tokenizer="conv", share_weights=True, memory_init="zeros", pos_embed=False)),
    (TTM, dict(read="tl_ttm", write="tl_ttm", memory_init="zeros", pos_embed=False)),
    (TTM, dict(read="tl", write="add_erase", processing="mixer", head="per_step")),
    (TTM, dict(read="tl_mha", write="tl_mha", processing="mlp", tokenizer="conv", head="last")),
]


@pytest.mark.parametrize("size,patch", [(28, 3), (64, 4)])
@pytest.mark.parametrize("cls,overrides", SHAPE_CASES)
def test_output_shapes(cls, overrides, size, patch):
    spec = dataclasses.replace(TINY, patch_size=patch, **overrides)
    model = cls(spec, num_classes=5)
    x = jax.ShapeDtypeStruct((2, size, size, size, 1), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, params, x)
    steps, k = size // patch, spec.read_tokens * (3 if cls is LMTTM else 1)
    assert out["logits"].shape == (2, 5)
    if spec.head == "per_step":
        assert out["step_logits"].shape == (2, steps, 5)
    tokens = jax.eval_shape(
        lambda v, x: model.apply(v, model.apply(v, x, method="tokenize"), method="encode"),
        params,
        x,
    )
    assert tokens.shape == (2, steps, k, spec.dim)


def python_loop_encode(model, variables, x, carry):
    """The recurrence evaluated step by step in Python with the scan's parameters."""
    tokens = model.apply(variables, x, method="tokenize")
    step = MemoryStep(model.spec, model.reads, model.process_name, FLAX)
    step_vars = {"params": variables["params"]["steps"]}
    outs = []
    for t in range(tokens.shape[1]):
        carry, out = step.apply(step_vars, carry, tokens[:, t], False)
        outs.append(out)
    return jnp.stack(outs, axis=1)


@pytest.mark.parametrize("cls", [LMTTM, TTM])
def test_scan_equals_python_loop(cls):
    model = cls(dataclasses.replace(TINY, kernels="flax"), num_classes=3)
    x = volumes((2, 28, 28, 28, 1))
    variables = init(model, x)
    scanned = model.apply(variables, model.apply(variables, x, method="tokenize"), method="encode")
    carry = model.apply(variables, 2, method="initial_memory")
    looped = python_loop_encode(model, variables, x, carry)
    assert scanned.shape == looped.shape
    np.testing.assert_allclose(scanned, looped, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [LMTTM, TTM])
def test_samples_independent_and_eval_deterministic(cls):
    model = cls(TINY, num_classes=3)
    x = volumes((4, 28, 28, 28, 1))
    variables = init(model, x)
    apply = jax.jit(model.apply)
    logits = apply(variables, x)["logits"]
    np.testing.assert_array_equal(logits, apply(variables, x)["logits"])
    changed = x.at[1:].set(volumes((3, 28, 28, 28, 1), seed=7))
    other = apply(variables, changed)["logits"]
    np.testing.assert_allclose(other[0], logits[0], atol=1e-6, rtol=0)
    assert np.abs(other[1:] - logits[1:]).max() > 1e-4


@pytest.mark.parametrize(
    "cls,overrides",
    [
        (LMTTM, dict()),
        (LMTTM, dict(read="tl_ttm", write="tl_mha", processing="mixer", share_weights=False)),
        (TTM, dict(write="add_erase", processing="mlp", head="per_step")),
    ],
)
@pytest.mark.slow
def test_every_parameter_gets_gradient(cls, overrides):
    model = cls(dataclasses.replace(TINY, **overrides), num_classes=3)
    x = volumes((4, 28, 28, 28, 1))
    labels = jnp.array([0, 1, 2, 1])
    variables = init(model, x)

    def loss(params):
        logits = model.apply({"params": params}, x, True, rngs={"dropout": jax.random.key(1)})
        return optax.softmax_cross_entropy_with_integer_labels(logits["logits"], labels).mean()

    grads = jax.jit(jax.grad(loss))(variables["params"])
    flat = jax.tree_util.tree_flatten_with_path(grads)[0]
    dead = [jax.tree_util.keystr(p) for p, g in flat if not np.any(np.asarray(g) != 0)]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("units", [1, 2, 4])
def test_linked_write_goes_to_next_unit(units):
    built = LMTTM(dataclasses.replace(TINY, num_units=units), num_classes=3)
    x = volumes((2, 28, 28, 28, 1))
    variables = init(built, x)
    # As explain does: the direct formulation, with Flax's layers, sows its steps.
    model = built.clone(spec=dataclasses.replace(built.spec, kernels="flax"))
    _, state = model.apply(variables, x, mutable=["intermediates"])
    memory = np.asarray(state["intermediates"]["steps"]["memory"][0])  # [bs, T, K, W, c]
    initial = np.broadcast_to(variables["params"]["initial_memory"], memory[:, 0].shape)
    assert memory.shape == (2, 9, units, TINY.memory_tokens, TINY.dim)
    _, writes = model.access_pattern(memory.shape[1])
    before = initial
    for t in range(memory.shape[1]):
        after = memory[:, t]
        written = (t + 1) % units
        assert writes[t] == written
        for unit in range(units):
            if unit == written:
                assert np.abs(after[:, unit] - before[:, unit]).max() > 1e-4, (t, unit)
            else:
                np.testing.assert_array_equal(after[:, unit], before[:, unit])
        before = after
    reads = state["intermediates"]["steps"]["read"]["weights"][0]
    assert reads.shape == (2, 9, 3, TINY.read_tokens, TINY.memory_tokens + 81)
    np.testing.assert_allclose(np.asarray(reads).sum(-1), 1.0, atol=1e-5)


def lowered_text(model, depth):
    """StableHLO of forward+backward (and of forward alone) for `depth`/3 steps."""
    x = jax.ShapeDtypeStruct((2, depth, 12, 12, 1), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]

    def loss(p, x):
        return model.apply({"params": p}, x)["logits"].sum()

    fwd = jax.jit(loss).lower(params, x).as_text()
    both = jax.jit(jax.grad(loss)).lower(params, x).as_text()
    return fwd, both


@pytest.mark.parametrize("cls", [LMTTM, TTM])
def test_program_does_not_grow_with_steps(cls):
    model = cls(TINY, num_classes=3)
    fwd9, both9 = lowered_text(model, 27)
    fwd21, both21 = lowered_text(model, 63)
    assert fwd9.count("stablehlo.while") == fwd21.count("stablehlo.while") == 1
    assert both9.count("stablehlo.while") == both21.count("stablehlo.while") == 2
    assert abs(len(both21) - len(both9)) < 0.02 * len(both9)


def model_config(**overrides) -> ml_collections.ConfigDict:
    fields = dataclasses.asdict(TINY) | {"name": "lmttm"} | overrides
    return ml_collections.ConfigDict(fields)


def test_build_model_builds_both():
    assert isinstance(build_model(model_config(), 3, 28), LMTTM)
    ttm = build_model(model_config(name="ttm", write="add_erase"), 3, 28)
    assert isinstance(ttm, TTM) and ttm.spec.write == "add_erase"


@pytest.mark.parametrize("size", [28, 64])
def test_resnet18_3d_baseline_shapes(size):
    model = build_model(model_config(name="resnet18_3d", dim=8), num_classes=3, volume_size=size)
    x = jax.ShapeDtypeStruct((2, size, size, size, 1), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)
    assert jax.eval_shape(model.apply, params, x)["logits"].shape == (2, 3)


@pytest.mark.parametrize(
    "size,patch,channels,init", [(28, 3, 1, "lecun_normal"), (30, 4, 2, "xavier_uniform")]
)
def test_patch_embedding_is_the_strided_convolution(size, patch, channels, init):
    """The patch embedding computed as a matmul has `nn.Conv`'s parameters (same names,
    shapes and initial values) and output, and the same parameter gradients."""
    import flax.linen as nn

    from lmttm_jax.models.cpu.layers import PatchEmbedding

    x = jax.random.normal(jax.random.key(0), (2, size, size + 1, size + 2, channels))
    kernel_init = getattr(nn.initializers, init)()
    conv = nn.Conv(16, (patch,) * 3, (patch,) * 3, "VALID", kernel_init=kernel_init)
    embed = PatchEmbedding(16, patch, kernel_init)
    params = embed.init(jax.random.key(1), x)
    conv_params = conv.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, conv_params)
    np.testing.assert_array_equal(params["params"]["kernel"], conv_params["params"]["kernel"])
    params = jax.tree.map(lambda a: a + 0.1, params)  # a non-zero bias

    def loss(module, p):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    np.testing.assert_allclose(embed.apply(params, x), conv.apply(params, x), atol=1e-5)
    grads, conv_grads = (
        jax.grad(lambda p: loss(embed, p))(params),
        jax.grad(lambda p: loss(conv, p))(params),
    )
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(
            grads["params"][name], conv_grads["params"][name], rtol=1e-4, atol=1e-4
        )


def loss_and_grads(model, params, x, labels):
    def loss(p):
        logits = model.apply({"params": p}, x, True, rngs={"dropout": jax.random.key(1)})
        return optax.softmax_cross_entropy_with_integer_labels(logits["logits"], labels).mean()

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize(
    "cls,overrides",
    [
        (LMTTM, dict()),
        (LMTTM, dict(dropout=0.0)),
        (TTM, dict(dropout=0.0)),
        (TTM, dict(read="tl_ttm", write="tl_mha", processing="mixer", dropout=0.0)),
    ],
    ids=["LMTTM", "LMTTM-dropout0", "TTM-dropout0", "TTM-tl_ttm-tl_mha-mixer-dropout0"],
)
def test_cpu_and_flax_kernels_compute_the_same_function(cls, overrides):
    """Our CPU kernels (and for LMTTM the cached recurrence) and Flax's own layers (the
    direct recurrence): identical parameters, the same outputs in eval mode and the
    same loss and gradients in train mode without dropout, to float rounding."""
    spec = dataclasses.replace(TINY, **overrides)
    cpu, flax = (cls(dataclasses.replace(spec, kernels=k), 3) for k in ("cpu", "flax"))
    assert cpu.cached == (cls is LMTTM) and not flax.cached
    x = volumes((2, 12, 12, 12, 1))
    params = init(cpu, x)["params"]
    identical = jax.tree.map(
        lambda a, b: a.shape == b.shape and a.dtype == b.dtype and bool((a == b).all()),
        params,
        init(flax, x)["params"],
    )  # raises when the trees' paths differ
    assert jax.tree.all(identical)
    outputs = [jax.jit(m.apply)({"params": params}, x) for m in (cpu, flax)]
    assert outputs[0].keys() == outputs[1].keys()
    for key in outputs[0]:
        np.testing.assert_allclose(outputs[0][key], outputs[1][key], atol=1e-5, rtol=0)
    if spec.dropout:
        return
    labels = jnp.array([0, 2])
    (loss_cpu, grads_cpu), (loss_flax, grads_flax) = (
        loss_and_grads(m, params, x, labels) for m in (cpu, flax)
    )
    np.testing.assert_allclose(loss_cpu, loss_flax, rtol=1e-5)
    scale = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads_flax))
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(grads_cpu)[0], jax.tree.leaves(grads_flax), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))


def test_kernels_switch():
    assert KERNELS == ("auto", "cpu", "flax")
    assert resolve_kernels("auto") == ("cpu" if jax.default_backend() == "cpu" else "flax")
    assert [layer_set(k).name for k in ("cpu", "flax")] == ["cpu", "flax"]
    with pytest.raises(ValueError, match="unknown kernels 'gpu'"):
        resolve_kernels("gpu")
    assert not LMTTM(dataclasses.replace(TINY, kernels="cpu", read="tl_ttm"), 3).cached


@pytest.mark.parametrize("units", [1, 2, 4])
def test_access_pattern_is_the_models(units):
    """Units read (c, c-1, c+1; TTM: the one unit) and written ((c+1) mod K) at each
    step, c = t mod K (`test_linked_write_goes_to_next_unit` checks the writes)."""
    reads, writes = LMTTM(dataclasses.replace(TINY, num_units=units), 3).access_pattern(9)
    c = np.arange(9) % units
    np.testing.assert_array_equal(reads, np.stack([c, (c - 1) % units, (c + 1) % units], 1))
    np.testing.assert_array_equal(writes, (c + 1) % units)
    reads, writes = TTM(TINY, 3).access_pattern(5)
    np.testing.assert_array_equal(reads, np.zeros((5, 1)))
    np.testing.assert_array_equal(writes, np.zeros(5))
