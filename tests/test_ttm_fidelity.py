"""Our TTM on converted weights of the original JAX TTM gives the original's outputs.

The reference numbers in `fixtures/ttm_reference.npz` were computed once by
`fixtures/make_ttm_reference.py` from the original module (google-research/scenic,
`scenic/projects/token_turing/model.py`, `TokenTuringMachineEncoder`, commit in the
npz's `meta`): for each (memory mode, processing unit) case it built the original with
process_size 8, memory_size 32, num_layers 2 (mlp_dim 512, 12 heads) on tokens
`[2, 3, 10, 96]`, stored the original's parameter layout (paths and shapes), filled
the layout with values from an integer hash of each path (`layout_params`, reproduced
here bit for bit, so no weights are stored), and stored the original's jitted
`train=False` output `[2, 3, 8, 96]`, in float32 and in float64 (JAX x64, the same
values); plus the original's add/erase write alone on unit-variance memory. The
original is not needed to run these tests. To regenerate:

    python tests/fixtures/make_ttm_reference.py SCENIC_DIR tests/fixtures/ttm_reference.npz COMMIT

with SCENIC_DIR a directory where `import scenic` works (the original's
token_turing, baselines/vit.py, baselines/mixer.py, token_learner/model.py,
model_lib/layers; stand-ins for the base models, vivit and tensorflow.io it imports
but TTM does not use). Tolerance in float32: 1e-5 absolute (on the machine that
made the fixture the outputs are bit-identical), except TL-AddErase after its first
write; in float64: 1e-10 for every case, TL-AddErase included.
"""

import dataclasses
import importlib.util
import json
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmttm_jax.models import TTM
from lmttm_jax.models.token_learner import AddEraseWrite
from lmttm_jax.models.ttm import convert_scenic_params, scenic_spec

FIXTURES = Path(__file__).parent / "fixtures"
_script = importlib.util.spec_from_file_location(
    "make_ttm_reference", FIXTURES / "make_ttm_reference.py"
)
make_ref = importlib.util.module_from_spec(_script)
_script.loader.exec_module(make_ref)

REFERENCE = dict(np.load(FIXTURES / "ttm_reference.npz"))
CASES = {make_ref.case_name(case): case for case in json.loads(str(REFERENCE["cases"]))}
ATOL = 1e-5
# TL-AddErase only: after the first write the memory is 1 + O(1/m) and the
# LayerNorms over it cancel most digits, so the original's own outputs move by up to
# ~4e-4 between its jitted and its op-by-op run (docs/ttm.md). The first step does
# not depend on the write and is held to ATOL.
ADD_ERASE_ATOL = 1e-3
# Float64 has no such noise (the original's float32 AddErase outputs are 1.1e-3 from
# its float64 ones): every case, every step.
FLOAT64_ATOL = 1e-10


def float64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def original_tree(case: dict) -> dict:
    """The original's variables for a case: `{"params": {"unit_function": ...}}`."""
    return {"params": make_ref.layout_params(case["layout"])}


def converted(case: dict, kernels: str = "auto"):
    """(our TTM, its variables) for a fixture case."""
    mode, unit = case["memory_mode"], case["processing_unit"]
    tree = original_tree(case)
    spec = scenic_spec(tree, mode, unit, memory_tokens=case["memory_size"], kernels=kernels)
    return TTM(spec, 2), {"params": {"steps": convert_scenic_params(tree, mode, unit)}}


def our_shapes(model: TTM) -> dict:
    """Our model's own variables, as (shape, dtype) leaves."""
    init = lambda key: model.init(key, REFERENCE["inputs"], method="encode")  # noqa: E731
    return jax.tree.map(lambda a: (a.shape, a.dtype), jax.eval_shape(init, jax.random.key(0)))


@pytest.mark.parametrize("kernels", ["cpu", "flax"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_original(name, kernels):
    model, variables = converted(CASES[name], kernels)
    encode = jax.jit(lambda v, x: model.apply(v, x, method="encode"))
    ours = np.asarray(encode(variables, jnp.asarray(REFERENCE["inputs"])))
    expected = REFERENCE[f"out/{name}"]
    assert ours.shape == expected.shape == (2, 3, 8, 96)
    np.testing.assert_allclose(ours[:, 0], expected[:, 0], rtol=0, atol=ATOL)
    atol = ADD_ERASE_ATOL if name.startswith("TL-AddErase") else ATOL
    np.testing.assert_allclose(ours, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_original_in_float64(name):
    model, variables = converted(CASES[name])
    with jax.enable_x64(True):
        encode = jax.jit(lambda v, x: model.apply(v, x, method="encode"))
        ours = np.asarray(encode(float64(variables), float64(REFERENCE["inputs"])))
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, REFERENCE[f"out64/{name}"], rtol=0, atol=FLOAT64_ATOL)


def test_add_erase_write_matches_original():
    tree = original_tree(CASES["TL-AddErase/transformer"])
    params = convert_scenic_params(tree, "TL-AddErase", "transformer")["write"]
    memory, control = REFERENCE["write_memory"], REFERENCE["write_control"]
    ours = AddEraseWrite().apply({"params": params}, memory, control, deterministic=True)
    np.testing.assert_allclose(ours, REFERENCE["write_out"], rtol=0, atol=ATOL)
    with jax.enable_x64(True):
        args = float64(({"params": params}, memory, control))
        ours = AddEraseWrite().apply(*args, deterministic=True)
    np.testing.assert_allclose(ours, REFERENCE["write_out64"], rtol=0, atol=FLOAT64_ATOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_tree_is_ours(name):
    """Same paths, shapes and dtypes as our model's own parameters, nothing left over."""
    model, variables = converted(CASES[name])
    assert our_shapes(model) == jax.tree.map(lambda a: (a.shape, a.dtype), variables)


def test_spec_sizes_from_shapes():
    tree = original_tree(CASES["TL-MHA/transformer"])
    spec = scenic_spec(tree, "TL-MHA", "transformer", head="last")
    expected = dict(dim=96, memory_tokens=32, read_tokens=8, read="tl_mha", write="tl_mha")
    expected |= dict(depth=2, mlp_dim=512, num_heads=12, tl_mha_heads=8, head="last")
    expected |= dict(dropout=0.0, memory_init="zeros", pos_embed=False, processing="transformer")
    assert {k: getattr(spec, k) for k in expected} == expected
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
    assert scenic_spec(abstract, "TL-MHA", "transformer", head="last") == spec
    for name, depth in (("TL/mixer", 2), ("TL/mlp", 2)):
        mode, unit = name.split("/")
        spec = scenic_spec(original_tree(CASES[name]), mode, unit)
        assert (spec.read, spec.write, spec.depth, spec.mlp_dim) == ("tl_ttm", "tl_ttm", depth, 512)


def test_tree_forms_are_equivalent():
    """Variables, their params, a FrozenDict or the unit subtree convert alike."""
    tree = original_tree(CASES["TL/mlp"])
    forms = (tree, tree["params"], flax.core.freeze(tree), tree["params"]["unit_function"])
    results = [convert_scenic_params(form, "TL", "mlp") for form in forms]
    for result in results[1:]:
        assert jax.tree.all(jax.tree.map(lambda a, b: bool((a == b).all()), results[0], result))


def test_position_embeddings_keep_their_names():
    """A unit built with `use_positional_embedding` maps to `pos_embed=True`."""
    case = CASES["TL/transformer"]
    tree = original_tree(case)
    unit = tree["params"]["unit_function"]
    m, n, r, c = 32, 10, 8, 96
    unit["read_pos_embed"] = {"pos_embedding": np.zeros((1, m + n, c), np.float32)}
    unit["write_pos_embed"] = {"pos_embedding": np.zeros((1, m + n + r, c), np.float32)}
    spec = scenic_spec(tree, "TL", "transformer")
    assert spec.pos_embed
    steps = convert_scenic_params(tree, "TL", "transformer")
    variables = {"params": {"steps": steps}}
    assert our_shapes(TTM(spec, 2)) == jax.tree.map(lambda a: (a.shape, a.dtype), variables)


def test_mismatches_are_reported():
    tree = original_tree(CASES["TL-AddErase/transformer"])
    with pytest.raises(ValueError, match="memory_tokens"):
        scenic_spec(tree, "TL-AddErase", "transformer")
    with pytest.raises(ValueError, match="memory_mode"):
        convert_scenic_params(tree, "NTM", "transformer")
    with pytest.raises(ValueError, match="unexpected"):
        convert_scenic_params(tree, "TL-AddErase", "mixer")
    with pytest.raises(ValueError, match="learner"):
        convert_scenic_params(tree, "TL", "transformer")
    with pytest.raises(ValueError, match="memory_tokens=16"):
        scenic_spec(original_tree(CASES["TL/mlp"]), "TL", "mlp", memory_tokens=16)


def test_spec_fields_can_be_set():
    tree = original_tree(CASES["TL/transformer"])
    spec = scenic_spec(tree, "TL", "transformer", tokenizer="conv", patch_size=4)
    base = scenic_spec(tree, "TL", "transformer")
    assert spec == dataclasses.replace(base, tokenizer="conv", patch_size=4)
