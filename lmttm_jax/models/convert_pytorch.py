"""Weights of the LMTTM authors' PyTorch model (its `state_dict`) for our
`ModelSpec.form="pytorch"` (docs/lmttm.md, "state_dict").

Its `state_dict`, saved as an `.npz` of NumPy arrays under PyTorch's key names (no
torch needed here), converts to our parameters:

    state = dict(np.load("lmttm_state_dict.npz"))
    spec = pytorch_spec(state, num_units=4, process_unit="transformer")
    params = convert_pytorch_state_dict(state, spec, read_pos_embed=pe_r, write_pos_embed=pe_w)
    LMTTM(spec, num_classes).apply({"params": params}, volumes)   # volumes [bs, D, H, W, C]

The PyTorch model's position embeddings are not parameters (it draws new ones at every call),
so a converted model takes given ones (`[1, W + n, c]`, `[1, 3W + n + 3r, c]`), or
none with `pos_embed=False`. The memory starts from zeros (`memory_init="zeros"`).
Entries of the branches the chosen setting never runs (docs/lmttm.md lists them) are
ignored; any other key, a missing key or a wrong shape is a `ValueError` naming it.
"""

import dataclasses
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


class _Reader:
    """A state_dict that remembers which keys were read and checks shapes."""

    def __init__(self, state: StateDict):
        self.state, self.read = state, set()

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.state:
            raise ValueError(f"PyTorch state_dict: missing key {key!r}")
        return tuple(np.shape(self.state[key]))

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """`state[key]` as float32, checked against `shape`."""
        if self.shape(key) != shape:
            raise ValueError(
                f"PyTorch state_dict: {key!r} has shape {self.shape(key)}, expected {shape}"
            )
        self.read.add(key)
        return np.asarray(self.state[key], np.float32)


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
    shape = _Reader(state).shape
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


def _linear(state: _Reader, key: str, n_in: int, n_out: int, conv1d: bool = False) -> dict:
    """`Linear` `[out, in]` with a bias, or bias-free kernel-1 `Conv1d` `[out, in, 1]`
    -> Dense `{"kernel": [in, out](, "bias": [out])}`."""
    weight = state.get(key + ".weight", (n_out, n_in, 1) if conv1d else (n_out, n_in))
    if conv1d:
        return {"kernel": weight[:, :, 0].T}
    return {"kernel": weight.T, "bias": state.get(key + ".bias", (n_out,))}


def _norm(state: _Reader, key: str, c: int) -> dict:
    return {"scale": state.get(key + ".weight", (c,)), "bias": state.get(key + ".bias", (c,))}


def _learner(state: _Reader, prefix: str, spec: ModelSpec, tokens: int) -> dict:
    """`TokenLearnerModule` (bias-free kernel-1 convolutions) -> our `tl` learner."""
    c, h = spec.dim, spec.tl_hidden_dim
    return {
        "norm": _norm(state, prefix + "norm", c),
        "attn_hidden": _linear(state, prefix + "attention_maps.0", c, h, conv1d=True),
        "attn_out": _linear(state, prefix + "attention_maps.2", h, tokens, conv1d=True),
        "value": _linear(state, prefix + "feat_conv", c, c, conv1d=True),
    }


def _attention(state: _Reader, prefix: str, c: int, heads: int) -> dict:
    """`self_attn` (stacked `in_proj` `[3c, c]`, `out_proj`) -> Flax attention."""
    d = c // heads
    weight = state.get(prefix + "in_proj_weight", (3 * c, c))
    bias = state.get(prefix + "in_proj_bias", (3 * c,))
    out = {
        name: {
            "kernel": weight[i * c : (i + 1) * c].T.reshape(c, heads, d),
            "bias": bias[i * c : (i + 1) * c].reshape(heads, d),
        }
        for i, name in enumerate(("query", "key", "value"))
    }
    proj = _linear(state, prefix + "out_proj", c, c)
    out["out"] = {"kernel": proj["kernel"].reshape(heads, d, c), "bias": proj["bias"]}
    return out


def _mdu(state: _Reader, spec: ModelSpec) -> dict:
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


def _check_unread(state: _Reader, processing: str) -> None:
    """Every key was read or belongs to a branch this setting never runs."""
    other_units = [p for kind, ps in PROCESS_PREFIXES.items() if kind != processing for p in ps]
    ignored = UNUSED_PREFIXES + tuple(other_units)
    for key in state.state:
        if key not in state.read and not key.startswith(ignored):
            raise ValueError(f"PyTorch state_dict: unexpected key {key!r}")


def _position_embeddings(
    spec: ModelSpec, read: np.ndarray | None, write: np.ndarray | None
) -> dict[str, Any]:
    """The given embeddings as our `steps` entries, checked: read `[1, W + n, c]`,
    write `[1, 3W + n + 3r, c]` (n input tokens per step)."""
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
    reader, c, p = _Reader(state), spec.dim, spec.patch_size
    in_channels = reader.shape("pre1.conv.weight")[1]
    steps = {
        "read": _learner(reader, LEARNERS["read"], spec, spec.read_tokens),
        "write": _learner(reader, LEARNERS["write"], spec, spec.memory_tokens),
        "mdu": _mdu(reader, spec),
    }
    steps.update(_position_embeddings(spec, read_pos_embed, write_pos_embed))
    tokenizer = {
        "kernel": reader.get("pre1.conv.weight", (c, in_channels, p, p, p)).transpose(
            2, 3, 4, 1, 0
        ),
        "bias": reader.get("pre1.conv.bias", (c,)),
    }
    head = _linear(reader, "cls", c, reader.shape("cls.weight")[0])
    _check_unread(reader, spec.processing)
    return {"tokenizer": {"patch": tokenizer}, "steps": steps, "head": {"logits": head}}
