"""Times the authors' PyTorch LMTTM at the sizes of our benchmark's `lmttm` and `lmttm128`
cases: train and inference samples/s on this machine, for same-run ratios against
`python -m benchmarks.bench` (docs/performance.md, "Against the PyTorch reference").

    SEED_REPO=/path/to/LMTTM-VMI
    python benchmarks/torch_reference.py "$SEED_REPO" [--cases=lmttm,lmttm128]
        [--steps=10] [--batch_size=32] [--threads=N] [--json=OUT.json]
        [--ours_json=bench.json]

Run it with a Python that has `torch` and `numpy`, not the project's environment (the
project never imports torch). SEED_REPO is a checkout of the reference,
github.com/hongkai-wei/LMTTM-VMI at commit 1104dc365decc525606193929e62602d9529fb4f.
As `tests/fixtures/make_lmttm_reference.py` does (its helpers are reused), this script
imports the reference's `model.LMTTM` from the checkout, copies none of its code and
changes behaviour only at run time, from outside: `.cuda()` returns the tensor (CPU),
the unused `einops` and `torchvision` imports are stand-ins, and the bugs that change
what is computed are neutralised (docs/lmttm.md): the MDU attends within a sample
(`batch_first`), the read and write position embeddings are fixed values (drawn once
from N(0, 0.02)) instead of a new draw at every step, and every call starts from zero
memory at ring unit 0 (nothing carried, no memory noise). PyTorch's fused
`TransformerEncoderLayer` path is left at its default, so inference may use it (the
same function, computed faster).

Sizes are ours (`benchmarks/bench.py` CASES on `configs/adrenal.py`): `lmttm` is dim
448, 4 units of 112 tokens (`memory_tokens_size` 448), 8 read tokens, 8 heads,
feed-forward 1344, 3 MDU layers sharing one set of weights, patch 3; `lmttm128` is
dim 128, 4 units of 32 tokens, 8 read tokens, 8 heads, feed-forward 384. Both are the
reference's own choices for what it fixes in code (8 heads, feed-forward 3 * dim, token
learner hidden width dim; the number of MDU layers is set on the built module), so
the sizes match exactly; a case whose sizes the reference cannot take would be listed as
such in its printed line and JSON (`differences`). What differs is the model's form,
not its sizes: ours has biases in the token learners, a pre-LayerNorm MDU with a final
LayerNorm, a LayerNorm in the head, and learned position embeddings and initial
memory, which the reference has not (its parameter count is printed: the entries that
receive a gradient).

Each case builds the model with the reference's config for those sizes, 2 classes (as
AdrenalMNIST3D) and 28^3 inputs, on a random batch (`--batch_size` volumes uniform in
[0, 1), random labels). Train step: forward in train mode (dropout 0.2), cross-entropy,
backward, an AdamW step (learning rate 3e-4, weight decay 0.05, as our recipe's
peak). Our train step also flips the batch and clips the gradients (both small).
Inference: eval mode under `torch.no_grad()`. Each is run once to warm up, then
`--steps` times; the medians give samples/s. torch uses `--threads` intra-op threads,
by default every core this process may run on. With `--ours_json` (the JSON of our
benchmark, run just before on the same machine), it also prints ours / reference for
train and inference samples/s per case.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
from make_lmttm_reference import (  # noqa: E402
    PYTORCH_COMMIT,
    PYTORCH_REPOSITORY,
    FixedPositionEmbeddings,
    install_stand_ins,
    used_keys,
)

INPUT_SIZE = 28
NUM_CLASSES = 2  # AdrenalMNIST3D
DROPOUT = 0.2
LEARNING_RATE = 3e-4
WEIGHT_DECAY = 0.05
PYTORCH_HEADS = 8  # fixed in the PyTorch code
# Our benchmark's cases in our field names (`benchmarks/bench.py` CASES on the defaults
# of `lmttm_jax/defaults.py`; tests/test_torch_reference.py checks they agree).
REFERENCE_WIDTH = dict(
    dim=448,
    num_units=4,
    memory_tokens=112,
    read_tokens=8,
    tl_hidden_dim=448,
    num_heads=8,
    mlp_dim=1344,
    depth=3,
    patch_size=3,
)
CASES: dict[str, dict[str, int]] = {
    "lmttm": REFERENCE_WIDTH,
    "lmttm128": {
        **REFERENCE_WIDTH,
        "dim": 128,
        "memory_tokens": 32,
        "tl_hidden_dim": 128,
        "mlp_dim": 384,
    },
}


def size_differences(sizes: dict[str, int]) -> list[str]:
    """Our sizes that the reference's code cannot take, as `field seed (ours N)`."""
    fixed = {
        "num_heads": PYTORCH_HEADS,
        "mlp_dim": 3 * sizes["dim"],
        "tl_hidden_dim": sizes["dim"],
    }
    return [f"{k} {v} (ours {sizes[k]})" for k, v in fixed.items() if sizes[k] != v]


def seed_config(sizes: dict[str, int], batch_size: int) -> dict[str, Any]:
    """The reference's nested config for our sizes (the keys its modules read)."""
    return {
        "batch_size": batch_size,
        "model": {
            "in_channels": 1,
            "dim": sizes["dim"],
            "memory_tokens_size": sizes["num_units"] * sizes["memory_tokens"],
            "num_blocks": sizes["num_units"],
            "summerize_num_tokens": sizes["read_tokens"],
            "out_class_num": NUM_CLASSES,
            "patch_size": sizes["patch_size"],
            "drop_r": DROPOUT,
            "preprocess_mode": "3d",
            "process_unit": "transformer",
            "memory_mode": "TL",
            "Read_use_positional_embedding": True,
            "Write_use_positional_embedding": True,
            "load_memory_add_noise": False,
            "load_memory_add_noise_mode": "normal",
        },
        "train": {"input_H": INPUT_SIZE, "input_W": INPUT_SIZE},
    }


def fixed_position_embeddings(torch, sizes: dict[str, int]) -> FixedPositionEmbeddings:
    """N(0, 0.02) read `[1, W + n, c]` and write `[1, 3W + n + 3r, c]` embeddings."""
    w, c, r = sizes["memory_tokens"], sizes["dim"], sizes["read_tokens"]
    n = (INPUT_SIZE // sizes["patch_size"]) ** 2
    rng = np.random.default_rng(0)
    shapes = {"read": (1, w + n, c), "write": (1, 3 * w + n + 3 * r, c)}
    return FixedPositionEmbeddings(
        torch, {k: (0.02 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    )


def build(seed_lmttm, torch, sizes: dict[str, int], batch_size: int):
    """The reference's encoder at our sizes, with the bugs that change the function off."""
    seed_lmttm.init = fixed_position_embeddings(torch, sizes)
    torch.manual_seed(0)
    model = seed_lmttm.TokenTuringMachineEncoder(seed_config(sizes, batch_size))
    unit = model.tokenTuringMachineUnit
    unit.transformerBlock.self_attn.batch_first = True
    unit.num_layers = sizes["depth"]
    return model


def forward(model, volumes):
    """Logits `[bs, classes]` of `volumes` `[bs, 1, D, H, W]` from zero memory, unit 0."""
    model.simpleDNC.current_flag = 0
    logits, _ = model(volumes, None)
    return logits


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_case(seed_lmttm, torch, sizes: dict[str, int], batch_size: int, steps: int) -> dict:
    """Train and inference seconds of the reference's model at `sizes`, one warm-up each."""
    model = build(seed_lmttm, torch, sizes, batch_size)
    rng = np.random.default_rng(1)
    shape = (batch_size, 1, INPUT_SIZE, INPUT_SIZE, INPUT_SIZE)
    volumes_np = rng.random(shape, dtype=np.float32)
    volumes = torch.from_numpy(volumes_np)
    labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, batch_size))
    used = set(used_keys(model, torch, volumes_np))
    params = [p for name, p in model.named_parameters() if name in used]
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def train_step() -> None:
        loss = torch.nn.functional.cross_entropy(forward(model, volumes), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad():
            forward(model, volumes)

    model.train()
    train_step()
    train = [timed(train_step) for _ in range(steps)]
    model.eval()
    infer_step()
    infer = [timed(infer_step) for _ in range(steps)]
    step = statistics.median(train)
    return {
        "batch_size": batch_size,
        "input_size": INPUT_SIZE,
        "sizes": sizes,
        "differences": size_differences(sizes),
        "seed_model_config": seed_config(sizes, batch_size)["model"],
        "params": sum(p.numel() for p in params),
        "step_s_median": step,
        "step_s_min": min(train),
        "step_s_max": max(train),
        "train_samples_per_s": batch_size / step,
        "infer_s_median": statistics.median(infer),
        "infer_samples_per_s": batch_size / statistics.median(infer),
    }


def format_row(case: str, row: dict[str, Any], threads: int) -> str:
    sizes = "; ".join(row["differences"]) or "as ours"
    return (
        f"{case:8s} {row['input_size']}^3 b{row['batch_size']:<3d} float32 torch x{threads}  "
        f"step {row['step_s_median']:.3f} s [{row['step_s_min']:.3f}, {row['step_s_max']:.3f}]"
        f"  train {row['train_samples_per_s']:6.2f}/s  infer {row['infer_samples_per_s']:6.2f}/s"
        f"  params {row['params']:,}  sizes {sizes}"
    )


def ours_rows(path: str, cases: list[str], batch_size: int) -> dict[str, dict[str, dict]]:
    """Our benchmark's rows for `cases` from its `--json` file ({case: {kernels: row}}),
    checked to match."""
    try:
        with open(path) as f:
            rows = json.load(f)["cases"]
    except (OSError, ValueError, KeyError) as err:
        sys.exit(f"--ours_json: cannot read the cases of our benchmark from {path}: {err}")
    for case in cases:
        if case not in rows:
            sys.exit(f"--ours_json: {path} has no case {case!r} (it has {sorted(rows)})")
        row = next(iter(rows[case].values()))
        if (row["batch_size"], row["input_size"]) != (batch_size, INPUT_SIZE):
            sys.exit(
                f"--ours_json: {path} case {case!r} is batch {row['batch_size']} at "
                f"{row['input_size']}^3; expected batch {batch_size} at {INPUT_SIZE}^3"
            )
    return {case: rows[case] for case in cases}


def ratios(ours: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """Ours / reference for train and inference samples/s."""
    return {
        kind: ours[f"{kind}_samples_per_s"] / reference[f"{kind}_samples_per_s"]
        for kind in ("train", "infer")
    }


def import_seed(seed_repo: str):
    """torch and the reference's `model.LMTTM` module; one clear line if either is missing."""
    try:
        import torch
    except ImportError:
        sys.exit(
            f"{Path(__file__).name}: torch is not installed for {sys.executable}: run it with "
            "a Python that has torch and numpy (not the project's environment)"
        )
    if not (Path(seed_repo) / "model" / "LMTTM.py").is_file():
        sys.exit(
            f"SEED_REPO {seed_repo!r} has no model/LMTTM.py: expected a checkout of "
            f"{PYTORCH_REPOSITORY} at commit {PYTORCH_COMMIT}"
        )
    install_stand_ins(torch)
    sys.path.insert(0, str(Path(seed_repo).resolve()))
    import model.LMTTM as seed_lmttm

    return torch, seed_lmttm


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed_repo", help="checkout of the reference (LMTTM-VMI)")
    parser.add_argument("--cases", default="lmttm,lmttm128", help=f"among {list(CASES)}")
    parser.add_argument("--steps", type=int, default=10, help="timed steps after a warm-up")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--ours_json", help="our benchmark's --json, for ours / reference")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown or not args.cases:
        parser.error(f"--cases: unknown or none {unknown}; expected some of {list(CASES)}")
    if args.steps < 1 or args.batch_size < 1 or args.threads < 1:
        parser.error("--steps, --batch_size and --threads must be at least 1")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    ours = ours_rows(args.ours_json, args.cases, args.batch_size) if args.ours_json else {}
    torch, seed_lmttm = import_seed(args.seed_repo)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, seed {PYTORCH_COMMIT[:12]}")
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": args.threads,
        "seed_repository": PYTORCH_REPOSITORY,
        "seed_commit": PYTORCH_COMMIT,
        "cases": {},
    }
    for case in args.cases:
        row = time_case(seed_lmttm, torch, CASES[case], args.batch_size, args.steps)
        print(format_row(case, row, args.threads), flush=True)
        for kernels, mine in ours.get(case, {}).items():
            ratio = row.setdefault("ours_over_reference", {})[kernels] = ratios(mine, row)
            print(
                f"{case:8s} ours ({kernels}) / reference: train "
                f"{mine['train_samples_per_s']:.2f} / {row['train_samples_per_s']:.2f} = "
                f"{ratio['train']:.2f}x, infer {mine['infer_samples_per_s']:.2f} / "
                f"{row['infer_samples_per_s']:.2f} = {ratio['infer']:.2f}x",
                flush=True,
            )
        result["cases"][case] = row
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
