"""Our LMTTM in the PyTorch form (`ModelSpec.form="pytorch"`) on converted weights of
the LMTTM authors' PyTorch model gives that model's outputs.

`fixtures/lmttm_reference.npz` holds, per case, the state_dict of the PyTorch model
with random non-trivial weights, fixed position embeddings, an input volume and the
PyTorch model's own outputs (bugs neutralised: zero initial memory, ring reset,
attention within a sample), run in float64 and float32;
`fixtures/make_lmttm_reference.py` made it (docs/lmttm.md). The PyTorch code is not
needed to run these tests. Every
step's tokens, reads, MDU outputs, written unit and memory, and the logits, are
compared: float32 to 1e-5, float64 (JAX x64) to 1e-12.

    python tests/test_lmttm_fidelity.py    # prints the max abs differences per case
"""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from lmttm_jax.models import LMTTM, ModelSpec
from lmttm_jax.models.convert_pytorch import convert_pytorch_state_dict, pytorch_spec

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = dict(np.load(FIXTURES / "lmttm_reference.npz"))
CASES = {case["name"]: case for case in json.loads(str(REFERENCE["cases"]))}
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}
# Captured module outputs (stacked over steps by the scan) -> the fixture's names.
CAPTURED = {"tokenizer": "tokens", "read": "reads", "mdu": "out", "write": "written"}


def state_dict(name: str) -> dict[str, np.ndarray]:
    prefix = f"{name}/state_dict/"
    return {k[len(prefix) :]: v for k, v in REFERENCE.items() if k.startswith(prefix)}


def converted(name: str, **fields) -> tuple[ModelSpec, dict]:
    """(our spec, our params) from the case's state_dict and position embeddings."""
    case, state = CASES[name], state_dict(name)
    spec = pytorch_spec(state, case["num_units"], case["process_unit"], **fields)
    embeddings = (REFERENCE[f"{name}/read_pos_embed"], REFERENCE[f"{name}/write_pos_embed"])
    return spec, convert_pytorch_state_dict(state, spec, *embeddings)


def volumes(name: str) -> np.ndarray:
    return REFERENCE[f"{name}/input"].transpose(0, 2, 3, 4, 1)  # torch [bs, C, D, H, W]


def ours(name: str, precision: str) -> dict[str, np.ndarray]:
    """Our outputs in the fixture's names, in `precision`: the direct formulation with
    Flax's layers (`kernels="flax"`), which sows its intermediates."""
    spec, params = converted(name, kernels="flax")
    model = LMTTM(spec, CASES[name]["num_classes"])
    dtype = np.dtype(precision)
    params = jax.tree.map(lambda a: a.astype(dtype), params)

    def run(p, x):
        return model.apply(
            {"params": p},
            x,
            mutable=["intermediates"],
            capture_intermediates=lambda m, method: method == "__call__" and m.name in CAPTURED,
        )

    with jax.enable_x64(precision == "float64"):
        out, state = jax.jit(run)(params, volumes(name).astype(dtype))
        found = {"logits": out["logits"]}
        inter = state["intermediates"]
        found["tokens"] = inter["tokenizer"]["__call__"][0]
        steps = inter["steps"]
        found.update({CAPTURED[k]: steps[k]["__call__"][0] for k in ("read", "mdu", "write")})
        found["memory"] = steps["memory"][0]
        return {k: np.asarray(v) for k, v in found.items()}


def max_differences(name: str, precision: str) -> dict[str, float]:
    """Max |ours - PyTorch model's| per output of a case in `precision`."""
    found = ours(name, precision)
    for key, value in found.items():
        assert value.dtype == np.dtype(precision), key
    return {
        key: float(np.abs(value - REFERENCE[f"{name}/{precision}/{key}"]).max())
        for key, value in found.items()
    }


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_pytorch_model(name, precision):
    differences = max_differences(name, precision)
    assert set(differences) == {"logits", "tokens", "reads", "out", "written", "memory"}
    assert max(differences.values()) < TOLERANCE[precision], differences


@pytest.mark.parametrize("name", sorted(CASES))
def test_cached_formulation_matches_pytorch_model(name):
    spec, params = converted(name, kernels="cpu")
    model = LMTTM(spec, CASES[name]["num_classes"])
    assert model.cached

    @jax.jit
    def run(p, x):
        tokens = model.apply({"params": p}, x, method="tokenize")
        return model.apply({"params": p}, x)["logits"], model.apply(
            {"params": p}, tokens, method="encode"
        )

    logits, out = run(params, volumes(name))
    for key, value in (("logits", logits), ("out", out)):
        expected = REFERENCE[f"{name}/float32/{key}"]
        np.testing.assert_allclose(value, expected, rtol=0, atol=TOLERANCE["float32"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_tree_is_ours(name):
    """Same paths, shapes and dtypes as our PyTorch-form model's own parameters."""
    spec, params = converted(name)
    model = LMTTM(spec, CASES[name]["num_classes"])
    init = jax.eval_shape(model.init, jax.random.key(0), volumes(name))["params"]
    shapes = jax.tree.map(lambda a: (a.shape, a.dtype), init)
    assert shapes == jax.tree.map(lambda a: (a.shape, a.dtype), params)


def test_spec_sizes_from_shapes():
    case = CASES["k2"]
    spec = pytorch_spec(state_dict("k2"), case["num_units"], "transformer")
    expected = dict(form="pytorch", dim=16, patch_size=3, num_units=2, memory_tokens=6)
    expected |= dict(read_tokens=3, tl_hidden_dim=16, depth=3, num_heads=8, mlp_dim=48)
    expected |= dict(share_weights=True, dropout=0.0, memory_init="zeros", pos_embed=True)
    assert {k: getattr(spec, k) for k in expected} == expected
    assert pytorch_spec(state_dict("k4_mlp"), 4, "mlp").processing == "mlp"


def test_unused_branches_are_ignored_and_other_keys_refused():
    """A full PyTorch checkpoint also holds the branches its setting never runs."""
    state = state_dict("k4")
    spec, params = converted("k4")
    unused = {k: np.zeros(s, np.float32) for k, s in CASES["k4"]["unused_keys"].items()}
    embeddings = (REFERENCE["k4/read_pos_embed"], REFERENCE["k4/write_pos_embed"])
    again = convert_pytorch_state_dict(state | unused, spec, *embeddings)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), params, again))
    with pytest.raises(ValueError, match=r"unexpected key 'pre1\.extra'"):
        convert_pytorch_state_dict(state | {"pre1.extra": np.zeros(1)}, spec, *embeddings)


def test_mismatches_are_reported():
    state = state_dict("k4")
    spec, _ = converted("k4")
    embeddings = (REFERENCE["k4/read_pos_embed"], REFERENCE["k4/write_pos_embed"])
    key = "tokenTuringMachineUnit.transformerBlock.linear2.bias"
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(ValueError, match=f"missing key '{key}'"):
        convert_pytorch_state_dict(missing, spec, *embeddings)
    wrong = state | {key: np.zeros(15, np.float32)}
    with pytest.raises(ValueError, match=rf"'{key}' has shape \(15,\), expected \(16,\)"):
        convert_pytorch_state_dict(wrong, spec, *embeddings)
    with pytest.raises(ValueError, match="missing key 'tokenTuringMachineUnit.mlpBlock.1.weight'"):
        pytorch_spec(state, 4, "mlp")
    with pytest.raises(ValueError, match="process_unit='mixer'"):
        pytorch_spec(state, 4, "mixer")
    with pytest.raises(ValueError, match="write_pos_embed has shape"):
        convert_pytorch_state_dict(state, spec, embeddings[0], embeddings[1][:, 1:])
    with pytest.raises(ValueError, match="are needed"):
        convert_pytorch_state_dict(state, spec)
    with pytest.raises(ValueError, match="form='pytorch'"):
        convert_pytorch_state_dict(state, ModelSpec(), *embeddings)


if __name__ == "__main__":
    for case_name in sorted(CASES):
        for precision_name in TOLERANCE:
            diffs = max_differences(case_name, precision_name)
            text = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
            print(f"{case_name:7s} {precision_name}: max {max(diffs.values()):.1e} ({text})")
