"""The tiny model the training tests share: seconds per epoch on a 2-core CPU."""

TINY_MODEL = dict(
    dim=32,
    memory_tokens=8,
    tl_hidden_dim=32,
    mlp_dim=64,
    depth=1,
    num_heads=4,
    read_tokens=4,
    dropout=0.0,
)
