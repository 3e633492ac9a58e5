"""Weights of the original JAX TTM (scenic `TokenTuringMachineEncoder`) for our TTM
(usage and the table of names: docs/ttm.md). The original keeps one
`TokenTuringMachineUnit` under `unit_function`, its submodules auto-named; ours are
`read`, `process` and `write` under `steps`. Below those names and shapes are the same,
so conversion renames the unit's top-level entries. With TL-AddErase the original's
`write_pos_embed` is unused and dropped.
"""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax.core import unfreeze

from lmttm_jax.models.spec import ModelSpec

# Original memory mode -> our read and write learners, the original's names of them.
MEMORY_MODES = {
    "TL": ("tl_ttm", "tl_ttm", "TokenLearnerModuleV11_0", "TokenLearnerModuleV11_1"),
    "TL-MHA": ("tl_mha", "tl_mha", "TokenLearnerMHA_0", "TokenLearnerMHA_1"),
    "TL-AddErase": ("tl_ttm", "add_erase", "TokenLearnerModuleV11_0", "TokenAddEraseWrite_0"),
}
# Top-level names the original gives each processing unit's pieces.
PROCESS_PATTERNS = {
    "transformer": r"Encoder_0",
    "mixer": r"MixerBlock_\d+|LayerNorm_0",
    "mlp": r"(LayerNorm|MlpBlock)_\d+",
}

Tree = Mapping[str, Any]


def _renamed(tree: Tree, memory_mode: str, processing_unit: str) -> dict[str, Any]:
    """The original unit's entries (from its variables, params or unit subtree) under
    our names; leaves untouched."""
    if memory_mode not in MEMORY_MODES:
        raise ValueError(f"memory_mode={memory_mode!r}: expected one of {tuple(MEMORY_MODES)}")
    if processing_unit not in PROCESS_PATTERNS:
        raise ValueError(
            f"processing_unit={processing_unit!r}: expected one of {tuple(PROCESS_PATTERNS)}"
        )
    unit = unfreeze(tree)
    for key in ("params", "unit_function"):
        unit = unit.get(key, unit)
    unit = dict(unit)
    read, write = MEMORY_MODES[memory_mode][2:]
    out = {"read": unit.pop(read, None), "write": unit.pop(write, None)}
    missing = [n for n, v in out.items() if v is None]
    if missing:
        raise ValueError(f"no {missing} learner for memory_mode={memory_mode!r} in the tree")
    out.update({k: unit.pop(k) for k in ("read_pos_embed", "write_pos_embed") if k in unit})
    if memory_mode == "TL-AddErase":
        out.pop("write_pos_embed", None)  # Unused by the original's add/erase write.
    pattern = re.compile(PROCESS_PATTERNS[processing_unit])
    process = {k: unit.pop(k) for k in list(unit) if pattern.fullmatch(k)}
    if unit or not process:
        raise ValueError(
            f"tree does not match memory_mode={memory_mode!r}, processing_unit="
            f"{processing_unit!r}: unexpected {sorted(unit)}, processing {sorted(process)}"
        )
    out["process"] = process.get("Encoder_0", process)
    return out


def convert_scenic_params(tree: Tree, memory_mode: str, processing_unit: str) -> dict[str, Any]:
    """Original TTM parameters -> our `params["steps"]` subtree (float32 arrays).

    Args:
      tree: the original `TokenTuringMachineEncoder`'s variables (`{"params":
        {"unit_function": ...}}`), its `params`, or the `unit_function` subtree.
      memory_mode: the original's `memory_mode`: `TL`, `TL-MHA` or `TL-AddErase`.
      processing_unit: `transformer`, `mixer` or `mlp`.

    Returns:
      `{"read": ..., "process": ..., "write": ...}` (and the position embeddings if
      the unit had them) for `TTM(scenic_spec(...))`. Raises `ValueError` when the
      tree is not one of that memory mode and processing unit.
    """
    return jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float32), _renamed(tree, memory_mode, processing_unit)
    )


def _count(process: Tree, prefix: str) -> int:
    return sum(1 for k in process if re.fullmatch(rf"{prefix}_\d+", k))


def _process_sizes(process: Tree, kind: str) -> dict[str, int]:
    """depth, mlp_dim (and num_heads for the transformer) from the unit's shapes."""
    if kind == "transformer":
        block = process["encoderblock_0"]
        return {
            "depth": _count(process, "encoderblock"),
            "mlp_dim": block["MlpBlock_0"]["Dense_0"]["kernel"].shape[1],
            "num_heads": block["MultiHeadDotProductAttention_0"]["query"]["kernel"].shape[1],
        }
    if kind == "mixer":
        kernel = process["MixerBlock_0"]["channel_mixing"]["Dense_0"]["kernel"]
        return {"depth": _count(process, "MixerBlock"), "mlp_dim": kernel.shape[1]}
    kernel = process["MlpBlock_0"]["Dense_0"]["kernel"]
    return {"depth": _count(process, "MlpBlock"), "mlp_dim": kernel.shape[1]}


def _learner_sizes(learner: Tree, kind: str) -> tuple[int, int]:
    """(c, tokens out) of a `tl_ttm` or `tl_mha` learner."""
    if kind == "tl_mha":
        return learner["tokens"].shape[2], learner["tokens"].shape[1]
    c = learner["LayerNorm_0"]["scale"].shape[0]
    return c, learner["token_masking"]["Dense_1"]["kernel"].shape[1]


def scenic_spec(
    tree: Tree,
    memory_mode: str,
    processing_unit: str,
    memory_tokens: int | None = None,
    **fields: Any,
) -> ModelSpec:
    """The `ModelSpec` of our TTM that computes what the original tree computes.

    Widths, token counts, depth and heads are read off the parameter shapes (the
    tree's leaves may be arrays or `jax.ShapeDtypeStruct`s). The AddErase write has
    no parameter that shows the memory size, so for `TL-AddErase` pass the
    original's `memory_size` as `memory_tokens`. The spec is for evaluation
    (dropout 0, zero initial memory); `fields` set the rest (e.g. `tokenizer`,
    `patch_size`, `head`, `dropout`).
    """
    params = _renamed(tree, memory_mode, processing_unit)
    read, write = MEMORY_MODES[memory_mode][:2]
    dim, read_tokens = _learner_sizes(params["read"], read)
    if write != "add_erase":
        written = _learner_sizes(params["write"], write)[1]
        if memory_tokens not in (None, written):
            raise ValueError(f"memory_tokens={memory_tokens}, but the write makes {written}")
        memory_tokens = written
    elif memory_tokens is None:
        raise ValueError("memory_tokens (the original's memory_size) is needed for TL-AddErase")
    sizes = {"num_heads": 12, **_process_sizes(params["process"], processing_unit)}
    if read == "tl_mha":
        sizes["tl_mha_heads"] = params["read"]["attn"]["query"]["kernel"].shape[1]
    spec = ModelSpec(
        dim=dim,
        memory_tokens=memory_tokens,
        read_tokens=read_tokens,
        read=read,
        write=write,
        processing=processing_unit,
        dropout=0.0,
        memory_init="zeros",
        pos_embed="read_pos_embed" in params,
        **sizes,
    )
    return dataclasses.replace(spec, **fields)
