"""The benchmark: its FLOP counter (matmuls and convolutions, scans times trip count),
its cases and the largest-batch search. The whole benchmark runs in
tests/test_gpu_check.py."""

import jax
import jax.numpy as jnp
import pytest
from absl import app

from benchmarks import bench
from benchmarks.bench import jaxpr_flops
from configs import adrenal, synthetic


def test_counts_matmul_inside_scan_times_length():
    w = jnp.ones((16, 32))

    def f(x):
        def body(c, _):
            return jnp.tanh(c @ w @ w.T), None

        return jax.lax.scan(body, x, None, length=7)[0]

    flops = jaxpr_flops(jax.make_jaxpr(f)(jnp.ones((4, 16))))
    assert flops == 7 * 2 * (2 * 4 * 16 * 32)


def test_counts_conv_and_batched_dot():
    x = jnp.ones((2, 9, 9, 9, 1))
    k = jnp.ones((3, 3, 3, 1, 8))
    conv = jax.make_jaxpr(
        lambda x: jax.lax.conv_general_dilated(
            x, k, (3, 3, 3), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")
        )
    )(x)
    assert jaxpr_flops(conv) == 2 * (2 * 3 * 3 * 3 * 8) * 27
    a, b = jnp.ones((5, 3, 4)), jnp.ones((5, 4, 6))
    assert jaxpr_flops(jax.make_jaxpr(jnp.matmul)(a, b)) == 2 * 5 * 3 * 6 * 4


def test_while_loop_is_refused():
    f = jax.make_jaxpr(lambda x: jax.lax.while_loop(lambda c: c < 3, lambda c: c + 1, x))
    with pytest.raises(ValueError, match="trip count"):
        jaxpr_flops(f(0))


def test_cases_take_the_scale_models_and_input_sizes():
    config = adrenal.get_config()
    for scale in ("tiny", "cpu"):
        case = bench.case_config(config, scale)
        expected = synthetic.get_config(f"scale={scale}").model
        assert case.model.dim == expected.dim and case.model.depth == expected.depth
        assert case.data.flip and case.train.grad_clip == config.train.grad_clip
    wide = bench.case_config(config, "lmttm64")
    assert wide.data.size == 64 and wide.model.patch_size == 4
    assert bench.case_config(config, "ttm").model.dim == config.model.dim
    with pytest.raises(app.UsageError, match="unknown case"):
        bench.case_config(config, "huge")


def test_largest_batch_doubles_until_out_of_memory(monkeypatch):
    tried = []

    def fake_case(config, batch, steps, count_flops):
        tried.append(batch)
        if batch >= 32:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 123 bytes")
        return {"train_samples_per_s": 1.0, "infer_samples_per_s": 2.0}

    monkeypatch.setattr(bench, "bench_case", fake_case)
    best = bench.largest_batch(adrenal.get_config(), 4)
    assert tried == [4, 8, 16, 32] and best["batch_size"] == 16
    assert best["out_of_memory_at"] == 32

    def broken_case(config, batch, steps, count_flops):
        raise ValueError("not a memory problem")

    monkeypatch.setattr(bench, "bench_case", broken_case)
    with pytest.raises(ValueError, match="not a memory"):
        bench.largest_batch(adrenal.get_config(), 4)
