"""The hyper-parameters shared by LMTTM and TTM, as one frozen dataclass."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Sizes and choices of a memory-token model (the defaults are `config.model`'s).

    Attributes:
      dim: token width c.
      tokenizer: `patch` (Conv3D p^3 stride p + ReLU) or `conv` (2-layer stem first).
      patch_size: p; the volume of size S gives T = S // p steps of (S // p)^2 tokens.
      stem_channels: width of the `conv` tokenizer's stem.
      num_units: K, the linked memory units of LMTTM (TTM has one block).
      memory_tokens: W, tokens per memory unit (TTM: m, tokens of its one block).
      read_tokens: r, tokens each read produces.
      read: read learner, `tl`, `tl_ttm` or `tl_mha`.
      write: write learner, `tl`, `tl_ttm`, `tl_mha`, or (TTM) `add_erase`.
      tl_hidden_dim: hidden width of the `tl` learner's weight MLP (reference: dim).
      tl_mha_heads: heads of the `tl_mha` learner.
      processing: `transformer`, `mixer` or `mlp`.
      depth, num_heads, mlp_dim: size of the processing unit.
      share_weights: one block applied `depth` times (transformer, PyTorch `mlp`).
      dropout: dropout rate everywhere dropout applies.
      memory_init: `learned` (a parameter broadcast per sample) or `zeros`.
      pos_embed: learned position embeddings on the read and write inputs.
      head: `mean`, `last` or `per_step`.
      kernels: `cpu` (our CPU kernels, `models/cpu/`), `flax` (Flax's layers and the
        direct recurrence, which sows its intermediates) or `auto` (`cpu` on CPUs).
      remat: recompute each step's activations in the backward pass.
      form: `ours` or `pytorch` (the LMTTM authors' PyTorch model minus its bugs;
        `forms.py`, docs/lmttm.md).
    """

    dim: int = 448
    tokenizer: str = "patch"
    patch_size: int = 3
    stem_channels: int = 32
    num_units: int = 4
    memory_tokens: int = 112
    read_tokens: int = 8
    read: str = "tl"
    write: str = "tl"
    tl_hidden_dim: int = 448
    tl_mha_heads: int = 8
    processing: str = "transformer"
    depth: int = 3
    num_heads: int = 8
    mlp_dim: int = 1344
    share_weights: bool = False
    dropout: float = 0.2
    memory_init: str = "learned"
    pos_embed: bool = True
    head: str = "mean"
    kernels: str = "auto"
    remat: bool = False
    form: str = "ours"
