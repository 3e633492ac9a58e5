"""Predictions of a trained model on the user's own volumes (`main.py --mode=predict`).

Inputs are `.npy`, `.npz` (holding exactly one array) or NIfTI (`.nii`, `.nii.gz`)
files, or a folder of them, each converted as the training data were
(`lmttm_jax.data.volumes.prepare_volume`). A file that cannot be used gets a row whose
`error` column names the file and the problem; the others are still predicted. Rows:
`file`, `prediction` (the label name), one probability column per label name, `error`.
"""

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lmttm_jax import evaluate, inference
from lmttm_jax.data.volumes import SUFFIXES, VolumeError, has_volume_suffix, load_volume
from lmttm_jax.inference import Restored
from lmttm_jax.workdir import atomic_write_text


def list_inputs(path: str | Path) -> list[Path]:
    """`path` itself if it is a file, else the volume files of the folder (sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path} does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file() and has_volume_suffix(p))
    if not files:
        raise FileNotFoundError(f"--input folder {path} holds no {'/'.join(SUFFIXES)} files")
    return files


def _row(run: Restored, path: Path, probs: np.ndarray | None, error: str | None) -> dict:
    row: dict[str, Any] = {"file": str(path), "prediction": None}
    row.update(dict.fromkeys(run.info.label_names))
    if probs is not None and not np.isfinite(probs).all():  # never a NaN "prediction"
        probs, error = None, f"{path}: the model's output is not finite"
    if probs is not None:
        label = int(evaluate.predicted_labels(probs[None], run.info.task)[0])
        row["prediction"] = run.info.label_names[label]
        row.update({n: float(p) for n, p in zip(run.info.label_names, probs, strict=True)})
    row["error"] = error
    return row


def predict_files(run: Restored, files: Sequence[Path]) -> list[dict]:
    """One row per file, in order; bad files get an `error` and no probabilities.
    Batches of the run's eval batch size, the last one zero-padded: one program is
    compiled."""
    batch_size = min(run.config.train.eval_batch_size, len(files))
    predict = inference.predict_fn(run)
    rows: dict[Path, dict] = {}
    bar = tqdm(total=len(files), desc="predict", unit="file", disable=len(files) < 2 or None)
    for start in range(0, len(files), batch_size):
        chunk, good, volumes = files[start : start + batch_size], [], []
        for path in chunk:
            try:
                volumes.append(load_volume(path, run.size, run.config.data.nifti_geometry))
                good.append(path)
            except VolumeError as err:
                tqdm.write(f"error: {err}", file=sys.stderr)
                rows[path] = _row(run, path, None, str(err))
        if volumes:
            batch = np.zeros((batch_size,) + (run.size,) * 3, np.float32)
            batch[: len(volumes)] = np.stack(volumes)
            for path, p in zip(good, predict(batch), strict=False):
                rows[path] = _row(run, path, p, None)
        bar.update(len(chunk))
    bar.close()
    return [rows[path] for path in files]


def format_rows(rows: list[dict], as_json: bool) -> str:
    """Rows as CSV (empty cells for missing values) or as a JSON list of objects."""
    if as_json:
        return json.dumps(rows, indent=1) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


def write_predictions(run: Restored, files: Sequence[Path], output: str | None) -> int:
    """Predicts `files` with `run` and writes the rows to `output` (JSON for a `.json`
    name, else CSV; None: CSV on stdout); returns the number of good files."""
    rows = predict_files(run, files)
    text = format_rows(rows, as_json=str(output).lower().endswith(".json"))
    failed = sum(row["error"] is not None for row in rows)
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(output), text)
        print(f"wrote {len(rows)} prediction(s) to {output} ({failed} failed)", flush=True)
    return len(rows) - failed
