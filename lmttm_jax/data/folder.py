"""The user's own volumes as a dataset (`configs/folder.py`: `data.name = "folder"`).

`<root>/labels.csv` lists the volumes, one row each: `file` (a `.npy`/`.npz`/`.nii`/
`.nii.gz` path relative to `root`), `label` (the class name) and, optionally, `split`
(`train`, `val` or `test`); other columns are ignored.

Classes are the distinct labels, sorted (`_sorted_labels`); without a `split` column
each class is split 70/10/20 with the run's seed (`stratified_split`). Every volume is
converted as `predict` converts it (`volumes.load_volume`) and stored as uint8, once per
size and `source_hash`, into `<cache_dir>/volumes_<S>.npz`; the split file
`<cache_dir>/folder_<S>_<csv|seed<k>>.npz` made from it has MedMNIST's layout plus
`label_names` and `{split}_files` (the CSV's paths, in the order of the predictions).
Every problem is reported before training, one line each, in one `FolderDatasetError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmttm_jax.data import volumes
from lmttm_jax.data.medmnist3d import (
    FOLDER_FLAG,
    SPLITS,
    DatasetError,
    DatasetInfo,
    check_size,
    user_cache_dir,
)
from lmttm_jax.data.synthetic import write_npz_atomic

LABELS_CSV = "labels.csv"
CACHE_DIR = ".lmttm_cache"
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.2}  # the rest (70%) is train
MIN_DRAWN = 3  # samples a class needs for a drawn split: one in each of train, val, test
CONVERSION_VERSION = 1  # part of the cache hash: bump when the conversion changes


class FolderDatasetError(DatasetError, ValueError):
    """`labels.csv` or the volumes it lists cannot make a dataset; one line per problem."""


@dataclass(frozen=True)
class Row:
    """One row of `labels.csv`: its line number and stripped cells (`split` None without
    a split column)."""

    line: int
    file: str
    label: str
    split: str | None


@dataclass(frozen=True)
class Table:
    """`labels.csv` parsed: its rows, the sorted class names and the raw bytes."""

    root: Path
    rows: tuple[Row, ...]
    label_names: tuple[str, ...]
    has_split: bool
    raw: bytes

    def class_index(self) -> np.ndarray:
        """Class index of each row `[N]` (-1 for an empty label)."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.array([index.get(row.label, -1) for row in self.rows], dtype=np.int64)


def _sorted_labels(labels: set[str]) -> tuple[str, ...]:
    """Numeric order when every label is an integer (`2` before `10`), else text order."""
    try:
        return tuple(sorted(labels, key=int))
    except ValueError:
        return tuple(sorted(labels))


def read_table(root: str | os.PathLike) -> Table:
    """Parses `<root>/labels.csv`; `FolderDatasetError` if it is missing, unreadable,
    lacks the `file`/`label` columns or names fewer than two classes."""
    root = Path(root).expanduser()
    path = root / LABELS_CSV
    if not path.is_file():
        raise FolderDatasetError(
            f"{path} not found: a folder dataset needs {LABELS_CSV} with columns "
            f"file,label[,split]; point --config.data.root at the folder that holds it"
        )
    try:
        raw = path.read_bytes()
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        records = [(reader.line_num, record) for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise FolderDatasetError(f"cannot read {path}: {err}") from err
    missing = [c for c in ("file", "label") if c not in reader.fieldnames]
    if missing:
        raise FolderDatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; expected file,label[,split], "
            f"found {','.join(reader.fieldnames) or 'no header'}"
        )
    has_split = "split" in reader.fieldnames
    rows = tuple(
        Row(
            line=line,
            file=(record["file"] or "").strip(),
            label=(record["label"] or "").strip(),
            split=(record["split"] or "").strip() if has_split else None,
        )
        for line, record in records
    )
    label_names = _sorted_labels({row.label for row in rows if row.label})
    if len(label_names) < 2:
        raise FolderDatasetError(
            f"{path}: the label column names {len(label_names)} class(es) "
            f"({', '.join(label_names) or 'none'}); a classifier needs at least 2"
        )
    return Table(root, rows, label_names, has_split, raw)


def stratified_split(labels: np.ndarray, seed: int) -> np.ndarray:
    """Split name of each sample `[N]` for class indices `[N]`: per class, a shuffle
    (`default_rng([seed, class])`) then 20% test, 10% val (rounded half up, at least
    one each when the class has 3 samples or more), the rest train. The counts do not
    depend on `seed`; which samples go where does."""
    out = np.full(len(labels), "train", dtype=object)
    for cls in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == cls)
        idx = idx[np.random.default_rng([seed, int(cls)]).permutation(len(idx))]
        least = 1 if len(idx) >= MIN_DRAWN else 0
        n_test, n_val = (
            max(least, int(np.floor(len(idx) * SPLIT_FRACTIONS[s] + 0.5))) for s in ("test", "val")
        )
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
    return out


def _row_splits(table: Table, seed: int) -> np.ndarray:
    """Split name of each row `[N]` (the CSV's, or drawn by `stratified_split`)."""
    if table.has_split:
        return np.array([row.split for row in table.rows], dtype=object)
    return stratified_split(table.class_index(), seed)


def folder_info(root: str | os.PathLike) -> DatasetInfo:
    """Registry entry of the folder dataset at `root`: classes and split sizes from
    `labels.csv` (no volume is read)."""
    table = read_table(root)
    splits = _row_splits(table, seed=0)  # the counts do not depend on the seed
    labelled = table.class_index() >= 0
    return DatasetInfo(
        flag=FOLDER_FLAG,
        task="binary-class" if len(table.label_names) == 2 else "multi-class",
        label_names=table.label_names,
        n_samples={s: int(np.sum(labelled & (splits == s))) for s in SPLITS},
    )


# ----------------------------------------------------------------------------- checks


Problems = list[tuple[int, str]]  # (line of labels.csv, what is wrong there)


def _row_problems(table: Table) -> tuple[Problems, list[int]]:
    """The bad cells and files (a file listed twice included), and the indices of the
    rows whose file exists, each file once."""
    problems, usable = [], []
    first: dict[Path, Row] = {}  # a file's resolved path -> the row that lists it first
    for i, row in enumerate(table.rows):
        if not row.label:
            problems.append((row.line, "empty label"))
        if table.has_split and row.split not in SPLITS:
            problems.append((row.line, f"unknown split {row.split!r}; expected train, val or test"))
        if not row.file:
            problems.append((row.line, "empty file"))
        elif not volumes.has_volume_suffix(Path(row.file)):
            suffixes = ", ".join(volumes.SUFFIXES)
            problems.append(
                (row.line, f"{row.file}: unsupported file type; expected one of {suffixes}")
            )
        elif not (table.root / row.file).is_file():
            problems.append((row.line, f"{table.root / row.file}: no such file"))
        elif (resolved := (table.root / row.file).resolve()) in first:
            problems.append((row.line, _listed_twice(row, first[resolved])))
        else:
            first[resolved] = row
            usable.append(i)
    return problems, usable


def _listed_twice(row: Row, earlier: Row) -> str:
    """A row naming the file of an `earlier` row (the same path, or another path to it)."""
    what = [f"{row.file}: the same file as line {earlier.line} ({earlier.file})"]
    if row.label != earlier.label:
        what.append(f"with another label ({row.label!r}, there {earlier.label!r})")
    if row.split != earlier.split:
        what.append(f"in another split ({row.split}, there {earlier.split}): a leak")
    return " ".join(what) + "; list each volume once"


def _split_problems(table: Table, splits: np.ndarray) -> list[str]:
    """A class too small to draw a split, or missing from train, val or test (test
    only when there is one), with each split's counts."""
    labels = table.class_index()
    present = [s for s in SPLITS if s != "test" or np.any(splits == "test")]
    problems = []
    for c, name in enumerate(table.label_names):
        counts = {s: int(np.sum((labels == c) & (splits == s))) for s in SPLITS}
        shown = ", ".join(f"{s} {n}" for s, n in counts.items())
        if not table.has_split and sum(counts.values()) < MIN_DRAWN:
            problems.append(
                f"class {name!r} has {sum(counts.values())} sample(s): a drawn split needs "
                f"at least {MIN_DRAWN} per class (one each for train, val and test); add "
                f"samples, or a split column"
            )
            continue
        missing = [s for s in present if not counts[s]]
        if missing:
            why = " (AUC needs every class in val)" if "val" in missing else ""
            problems.append(f"class {name!r}: no sample in {', '.join(missing)} ({shown}){why}")
    if not np.any(splits == "val"):
        problems.append("no validation sample: model selection needs a non-empty val split")
    return problems


def cache_dir(root: Path) -> Path:
    """`<root>/.lmttm_cache`, or where `root` cannot be written (a shared, read-only
    dataset) a folder of the user's cache named after `root`'s absolute path."""
    own = root / CACHE_DIR
    if os.access(own if own.is_dir() else root, os.W_OK):
        return own
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return user_cache_dir() / "folders" / name


def _raise(table: Table, rows: Problems, overall: list[str]) -> None:
    """One `FolderDatasetError`: the rows' problems in line order, then the others."""
    lines = [f"{LABELS_CSV} line {line}: {what}" for line, what in sorted(rows)] + overall
    raise FolderDatasetError(
        f"{table.root / LABELS_CSV}: {len(lines)} problem(s), nothing was trained:\n"
        + "\n".join(f"  {line}" for line in lines)
    )


# ----------------------------------------------------------------------------- cache


def source_hash(table: Table, size: int, geometry: bool) -> str:
    """SHA-256 of the conversion version and settings, `labels.csv` and each row's file
    path, size and modification time (files are not read)."""
    digest = hashlib.sha256(f"v{CONVERSION_VERSION} size {size} geometry {geometry}\n".encode())
    digest.update(table.raw)
    for row in table.rows:
        stat = (table.root / row.file).stat()
        digest.update(f"\n{row.file}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _cached(path: Path, digest: str, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays `keys` of a cache file made from `digest`, else None (absent, stale or
    unreadable: made again)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["source_sha256"]) != digest:
                return None
            return {key: npz[key] for key in keys}
    except Exception:  # a missing or damaged cache file is simply rebuilt
        return None


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        write_npz_atomic(path, arrays)
    except OSError as err:
        raise FolderDatasetError(
            f"cannot write the converted volumes to {path}: {err.strerror or err}"
        ) from err


def _convert(
    table: Table, size: int, usable: list[int], geometry: bool
) -> tuple[np.ndarray, Problems]:
    """uint8 `[N, S, S, S]` of the usable rows' volumes (zeros elsewhere) and the volumes
    that cannot be read or converted."""
    images = np.zeros((len(table.rows),) + (size,) * 3, np.uint8)
    problems = []
    bar = tqdm(usable, desc=f"converting {table.root}", unit="volume", disable=None, leave=False)
    for i in bar:
        row = table.rows[i]
        try:
            volume = volumes.load_volume(table.root / row.file, size, geometry)
            images[i] = volumes.to_uint8(volume)
        except volumes.VolumeError as err:
            problems.append((row.line, str(err)))
    return images, problems


def ensure_folder_dataset(
    root: str | os.PathLike, size: int, seed: int = 0, geometry: bool = True
) -> Path:
    """Checks `<root>/labels.csv` and its volumes, converts them if the cache is stale,
    and returns the MedMNIST-style split file (see the module docstring).

    Raises `FolderDatasetError` listing every problem, one per line.
    """
    check_size(size)
    table = read_table(root)
    problems, usable = _row_problems(table)
    splits = _row_splits(table, seed)
    overall = _split_problems(table, splits)
    if problems or overall:  # the volumes that exist are still read, to report them all
        _raise(table, problems + _convert(table, size, usable, geometry)[1], overall)
    cache = cache_dir(table.root)
    digest = source_hash(table, size, geometry)
    tag = "csv" if table.has_split else f"seed{seed}"
    split_path = cache / f"{FOLDER_FLAG}_{size}_{tag}.npz"
    if _cached(split_path, digest, ()) is not None:
        return split_path
    volumes_path = cache / f"volumes_{size}.npz"
    converted = _cached(volumes_path, digest, ("images",))
    if converted is None:
        images, problems = _convert(table, size, usable, geometry)
        if problems:
            _raise(table, problems, [])
        _write(volumes_path, {"images": images, "source_sha256": np.array(digest)})
    else:
        images = converted["images"]
    labels = table.class_index()
    files = np.array([row.file for row in table.rows])
    arrays = {"label_names": np.array(table.label_names), "source_sha256": np.array(digest)}
    for split in SPLITS:
        take = np.flatnonzero(splits == split)
        if split == "test" and not len(take):
            continue  # no test split: results report validation, as for such MedMNIST files
        arrays[f"{split}_images"] = images[take]
        arrays[f"{split}_labels"] = labels[take, None].astype(np.int32)
        arrays[f"{split}_files"] = files[take]
    _write(split_path, arrays)
    return split_path
