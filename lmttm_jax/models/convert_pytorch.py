"""The LMTTM authors' PyTorch model's `state_dict` (an `.npz` of NumPy arrays under
PyTorch's key names) -> our parameters of `ModelSpec.form="pytorch"` (docs/lmttm.md).

Its position embeddings are not parameters (it draws new ones at every call), so a
converted model takes given ones, or none with `pos_embed=False`. Entries of the
branches the setting never runs are ignored; any other key, a missing key or a
wrong shape is a `ValueError` naming it.
"""

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from lmttm_jax.models.spec import ModelSpec

UNIT = "tokenTuringMachineUnit."
# The PyTorch model fixes these: 8 heads and 3 applications of its one MDU layer.
MDU_HEADS = 8
MDU_LAYERS = 3
# Key prefixes of the branches it builds but the `3d` / `TL` setting never runs.
UNUSED_PREFIXES = (
    UNIT + "tokenLearnerV11_1.",
    UNIT + "tokenLearnerV11_2.",
    UNIT + "tokenLearnerMHA1.",
    UNIT + "tokenLearnerMHA2.",
    UNIT + "tokenAddEraseWrite.",
    UNIT + "mixer_sequence_block.",
    UNIT + "mixer_channels__block.",
    "pre2.",
    "pre3.",
    "pre_dim.",
)
# ... and of the processing unit not chosen.
PROCESS_PREFIXES = {
    "transformer": (UNIT + "transformerBlock.",),
    "mlp": (UNIT + "mlpBlock.", UNIT + "norm."),
}
LEARNERS = {"read": UNIT + "tokenLearner1.", "write": UNIT + "tokenLearner2."}

StateDict = Mapping[str, Any]


def _shape(state: StateDict, key: str) -> tuple[int, ...]:
    if key not in state:
        raise ValueError(f"PyTorch state_dict: missing key {key!r}")
    return tuple(np.shape(state[key]))


def _take(state: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Removes `state[key]` and returns it as float32, checked against `shape`."""
    if _shape(state, key) != shape:
        raise ValueError(
            f"PyTorch state_dict: {key!r} has shape {_shape(state, key)}, expected {shape}"
        )
    return np.asarray(state.pop(key), np.float32)


def pytorch_spec(
    state: StateDict, num_units: int, process_unit: str = "transformer", **fields: Any
) -> ModelSpec:
    """Our `ModelSpec` (`form="pytorch"`) of the PyTorch model with this `state_dict`.

    Widths, patch size and token counts are read off the shapes; its
    `num_blocks` (K) is not in them and is given as `num_units`. The spec is for
    evaluation (dropout 0, zero initial memory, position embeddings on, one MDU layer
    applied 3 times); `fields` set the rest.
    """
    if process_unit not in PROCESS_PREFIXES:
        raise ValueError(
            f"process_unit={process_unit!r}: expected one of {tuple(PROCESS_PREFIXES)}"
        )
    shape = functools.partial(_shape, state)
    dim, _, patch = shape("pre1.conv.weight")[:3]
    mlp = "transformerBlock.linear1" if process_unit == "transformer" else "mlpBlock.1"
    spec = ModelSpec(
        form="pytorch",
        dim=dim,
        patch_size=patch,
        num_units=num_units,
        memory_tokens=shape(LEARNERS["write"] + "attention_maps.2.weight")[0],
        read_tokens=shape(LEARNERS["read"] + "attention_maps.2.weight")[0],
        tl_hidden_dim=shape(LEARNERS["read"] + "attention_maps.0.weight")[0],
        processing=process_unit,
        depth=MDU_LAYERS,
        num_heads=MDU_HEADS,
        mlp_dim=shape(UNIT + mlp + ".weight")[0],
        share_weights=True,
        dropout=0.0,
        memory_init="zeros",
        pos_embed=True,
    )
    return dataclasses.replace(spec, **fields)


def _linear(state: dict, key: str, n_in: int, n_out: int) -> dict:
    """`Linear` `[out, in]` -> Dense `{"kernel": [in, out], "bias": [out]}`."""
    kernel = _take(state, key + ".weight", (n_out, n_in)).T
    return {"kernel": kernel, "bias": _take(state, key + ".bias", (n_out,))}


def _norm(state: dict, key: str, c: int) -> dict:
    return {"scale": _take(state, key + ".weight", (c,)), "bias": _take(state, key + ".bias", (c,))}


def _learner(state: dict, prefix: str, spec: ModelSpec, tokens: int) -> dict:
    """`TokenLearnerModule` (bias-free kernel-1 `Conv1d`s `[out, in, 1]`) -> `tl`."""
    c, h = spec.dim, spec.tl_hidden_dim

    def conv(key: str, n_in: int, n_out: int) -> dict:
        return {"kernel": _take(state, prefix + key + ".weight", (n_out, n_in, 1))[:, :, 0].T}

    return {
        "norm": _norm(state, prefix + "norm", c),
        "attn_hidden": conv("attention_maps.0", c, h),
        "attn_out": conv("attention_maps.2", h, tokens),
        "value": conv("feat_conv", c, c),
    }


def _attention(state: dict, prefix: str, c: int, heads: int) -> dict:
    """`self_attn` (stacked `in_proj` `[3c, c]`, `out_proj`) -> Flax attention."""
    d = c // heads
    weight = _take(state, prefix + "in_proj_weight", (3 * c, c))
    bias = _take(state, prefix + "in_proj_bias", (3 * c,))
    qkv = zip(("query", "key", "value"), np.split(weight, 3), np.split(bias, 3), strict=True)
    out = {
        name: {"kernel": w.T.reshape(c, heads, d), "bias": b.reshape(heads, d)}
        for name, w, b in qkv
    }
    proj = _linear(state, prefix + "out_proj", c, c)
    out["out"] = {"kernel": proj["kernel"].reshape(heads, d, c), "bias": proj["bias"]}
    return out


def _mdu(state: dict, spec: ModelSpec) -> dict:
    """`transformerBlock` -> `layer`, or `mlpBlock` and `norm` -> `block`, `norm`."""
    c, f = spec.dim, spec.mlp_dim
    if spec.processing == "transformer":
        p = UNIT + "transformerBlock."
        layer = {
            "attention": _attention(state, p + "self_attn.", c, spec.num_heads),
            "norm1": _norm(state, p + "norm1", c),
            "linear1": _linear(state, p + "linear1", c, f),
            "linear2": _linear(state, p + "linear2", f, c),
            "norm2": _norm(state, p + "norm2", c),
        }
        return {"layer": layer}
    p = UNIT + "mlpBlock."
    block = {
        "norm": _norm(state, p + "0", c),
        "linear1": _linear(state, p + "1", c, f),
        "linear2": _linear(state, p + "4", f, c),
    }
    return {"block": block, "norm": _norm(state, UNIT + "norm", c)}


def _position_embeddings(
    spec: ModelSpec, read: np.ndarray | None, write: np.ndarray | None
) -> dict[str, Any]:
    """The given embeddings (n input tokens per step) as our `steps` entries, checked."""
    if not spec.pos_embed:
        if read is not None or write is not None:
            raise ValueError("position embeddings were given but spec.pos_embed=False")
        return {}
    if read is None or write is None:
        raise ValueError("read_pos_embed and write_pos_embed are needed with spec.pos_embed=True")
    read, write = np.asarray(read, np.float32), np.asarray(write, np.float32)
    w, c = spec.memory_tokens, spec.dim
    if read.ndim != 3 or read.shape[0] != 1 or read.shape[1] <= w or read.shape[2] != c:
        raise ValueError(f"read_pos_embed has shape {read.shape}, expected [1, {w} + n, {c}]")
    rows = 3 * w + (read.shape[1] - w) + 3 * spec.read_tokens
    if write.shape != (1, rows, c):
        raise ValueError(f"write_pos_embed has shape {write.shape}, expected {(1, rows, c)}")
    return {"read_pos_embed": {"pos_embedding": read}, "write_pos_embed": {"pos_embedding": write}}


def convert_pytorch_state_dict(
    state: StateDict,
    spec: ModelSpec,
    read_pos_embed: np.ndarray | None = None,
    write_pos_embed: np.ndarray | None = None,
) -> dict[str, Any]:
    """The PyTorch model's `state_dict` (key -> array) -> our LMTTM's `params`.

    `spec` is `pytorch_spec(state, ...)` (or one with the same sizes; `form="pytorch"`,
    one shared MDU layer or block). With `spec.pos_embed` the two position embeddings
    are needed: read `[1, W + n, c]`, write `[1, 3W + n + 3r, c]`.
    """
    if spec.form != "pytorch" or not spec.share_weights:
        raise ValueError(
            f"spec must be the PyTorch form with one shared MDU layer (form='pytorch', "
            f"share_weights=True), got form={spec.form!r}, "
            f"share_weights={spec.share_weights}"
        )
    state, c, p = dict(state), spec.dim, spec.patch_size
    in_channels = _shape(state, "pre1.conv.weight")[1]
    steps = {
        "read": _learner(state, LEARNERS["read"], spec, spec.read_tokens),
        "write": _learner(state, LEARNERS["write"], spec, spec.memory_tokens),
        "mdu": _mdu(state, spec),
    }
    steps.update(_position_embeddings(spec, read_pos_embed, write_pos_embed))
    conv = _take(state, "pre1.conv.weight", (c, in_channels, p, p, p)).transpose(2, 3, 4, 1, 0)
    patch = {"kernel": conv, "bias": _take(state, "pre1.conv.bias", (c,))}
    head = _linear(state, "cls", c, _shape(state, "cls.weight")[0])
    # What is left was not read: it must belong to a branch this setting never runs.
    other = [
        pre for unit, pres in PROCESS_PREFIXES.items() if unit != spec.processing for pre in pres
    ]
    for key in state:
        if not key.startswith(UNUSED_PREFIXES + tuple(other)):
            raise ValueError(f"PyTorch state_dict: unexpected key {key!r}")
    return {"tokenizer": {"patch": patch}, "steps": steps, "head": {"logits": head}}
