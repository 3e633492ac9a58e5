"""Models shipped inside the package: predict and explain without training first.

  python main.py --mode=predict --pretrained=adrenalmnist3d --input=scans/ --output=p.csv
  python main.py --mode=explain --pretrained=adrenalmnist3d --input=scan.nii.gz --output=e.png
  python -m lmttm_jax.pretrained list|examples|export ...   (see __main__.py)

A pretrained model is the folder `lmttm_jax/pretrained/<name>/` of a finished run:

  config.json         the run's config without the training machine's fields
                      (`data.root`, `train.compile_cache`)
  member_<i>.msgpack  member i's parameters as predict uses them (the moving average
                      when the run kept one), one per ensemble member
  card.json           where it comes from (the command, machine and wall time given to
                      `export`), the figures of the run's `results.json`, and each
                      member file's SHA-256 (checked on every restore)
  README.md           the card in words

`lmttm_jax.inference.restore` reads such a folder as it reads a run directory, so
predictions equal those of the run it was exported from.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax import serialization

from lmttm_jax import config as config_lib
from lmttm_jax import data as data_lib
from lmttm_jax import inference
from lmttm_jax.inference import SHIPPED, member_path
from lmttm_jax.workdir import Workdir, WorkdirError, atomic_write_text, write_json

MACHINE_FIELDS = (("data", "root"), ("train", "compile_cache"))


# ----------------------------------------------------------------------------- export


def _portable_config(config: ml_collections.ConfigDict) -> dict:
    """The config as JSON without the machine's fields (`MACHINE_FIELDS`)."""
    raw = json.loads(config.to_json_best_effort())
    for section, field in MACHINE_FIELDS:
        raw[section].pop(field, None)
    return raw


def _figures(metrics: dict | None) -> dict | None:
    return None if metrics is None else {k: metrics[k] for k in ("auc", "acc")}


def _member_card(m: dict) -> dict:
    kept = {k: m[k] for k in ("member", "seed", "fold", "best_epoch") if k in m}
    return {**kept, "val": _figures(m["val"]), "test": _figures(m.get("test"))}


def card(config: ml_collections.ConfigDict, results: dict, provenance: dict[str, str]) -> dict:
    """What the folder holds and where it comes from: `provenance` (command, machine,
    wall time) and the figures of the run's `results` (ACC/AUC only)."""
    info = data_lib.get_info(config.data.name, config.data.root)
    members = results.get("members") or [{"member": 0, "seed": config.seed, **results}]
    return {
        "dataset": config.data.name,
        "size": config.data.size,
        "model": config.model.name,
        "label_names": list(info.label_names),
        "parameters": results.get("parameters"),
        "ensemble": {"members": inference.members(config), "mode": config.train.ensemble_mode},
        **provenance,
        "val": _figures(results["val"]),
        "val_kind": results.get("val_kind", "the validation split that selected the epoch"),
        "test": _figures(results.get("test")),
        "test_missing": results.get("test_missing"),
        "members": [_member_card(m) for m in members],
    }


def _figure_text(metrics: dict | None) -> str:
    return "none" if metrics is None else f"AUC {metrics['auc']:.3f}, ACC {metrics['acc']:.3f}"


def _validation_kind(info: dict) -> str:
    """What the card's validation figures are, and whether they are optimistic."""
    if info["ensemble"]["members"] <= 1:
        return "the split that selected the epoch, so optimistic"
    if info["ensemble"]["mode"] == "seeds":  # not out-of-fold
        return f"{info['val_kind']}; the split that selected each member's epoch, so optimistic"
    return info["val_kind"]


def readme(name: str, info: dict) -> str:
    """The card `info` in words."""
    k = info["ensemble"]["members"]
    kind = f"an ensemble of {k} ({info['ensemble']['mode']})" if k > 1 else "a single model"
    lines = [
        f"# Pretrained `{name}`",
        "",
        f"{info['model']} on {info['dataset']} at {info['size']}^3, {kind}; "
        f"{info['parameters']} parameters{' per model' if k > 1 else ''}; "
        f"classes: {', '.join(info['label_names'])}.",
        "",
        "    python main.py --mode=predict --pretrained=" + name + " --input=DIR --output=p.csv",
        "    python main.py --mode=explain --pretrained=" + name + " --input=VOLUME --output=e.png",
        "",
        "Trained with: "
        + (f"`{info['command']}`" if info.get("command") else "(command not recorded)"),
        f"Machine: {info.get('machine') or 'not recorded'}; "
        f"wall time: {info.get('wall_time') or 'not recorded'}.",
        "",
        f"Validation ({_validation_kind(info)}): {_figure_text(info['val'])}.",
        f"Test: {_figure_text(info['test'])}"
        + (f" ({info['test_missing']})." if info.get("test_missing") else "."),
        "",
        "| member | seed | best epoch | validation | test |",
        "|---|---|---|---|---|",
    ]
    for m in info["members"]:
        lines.append(
            f"| {m['member']} | {m['seed']} | {m['best_epoch']} | {_figure_text(m['val'])} "
            f"| {_figure_text(m['test'])} |"
        )
    lines += ["", "Written by `python -m lmttm_jax.pretrained export` (lmttm_jax/pretrained)."]
    return "\n".join(lines) + "\n"


def export(
    workdir: str | Path, out: str | Path, provenance: dict[str, str], name: str | None = None
) -> Path:
    """Writes the folder `out` from the finished run `workdir` (replacing a previous
    export only once the new one is complete) for `--pretrained=name` (default: the
    folder's name); returns `out`."""
    run = Workdir(workdir)
    config = config_lib.load_run_config(run.path)
    if config.data.name == data_lib.FOLDER_FLAG:
        raise WorkdirError(
            f"{workdir}: a folder dataset's run cannot be exported (its classes live in "
            f"its labels.csv); predict with --workdir={workdir}"
        )
    if not run.results_path.is_file():
        raise WorkdirError(f"{run.results_path} not found: export a finished run")
    params = inference.restore(run.path).params
    out = Path(out)
    tmp = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_json(tmp / "config.json", _portable_config(config))
    info = card(config, run.read_results(), provenance)
    for i, (m, p) in enumerate(zip(info["members"], params, strict=True)):
        data = serialization.msgpack_serialize(jax.device_get(p))
        member_path(tmp, i).write_bytes(data)
        m["sha256"] = hashlib.sha256(data).hexdigest()  # checked by `inference.restore`
    write_json(tmp / "card.json", info)
    atomic_write_text(tmp / "README.md", readme(name or out.name, info))
    old = out.with_name(f".{out.name}.export-old")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def examples(name: str, out: Path, count: int, root: Path | None = None) -> list[Path]:
    """The first `count` validation volumes of the dataset the shipped model `name` was
    trained on (its MedMNIST file under `root`, default `data.default_root()`), as
    `.npy` files named with their index and true class: `val_3_hyperplasia.npy`."""
    config = json.loads((inference.shipped_dir(name) / "config.json").read_text())
    flag, size = config["data"]["name"], config["data"]["size"]
    root = Path(root or data_lib.default_root())
    path = data_lib.dataset_path(root, flag, size)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the examples come from {flag}'s validation split; point "
            f"at a folder that holds it with --data_root=DIR or MEDMNIST_ROOT=DIR (a "
            f"training run with --config.data.download=True fetches it)"
        )
    images, labels = data_lib.load_split(path, flag, size, "val")
    names = data_lib.get_info(flag).label_names
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(min(count, len(labels))):
        written.append(out / f"val_{i}_{names[labels[i]]}.npy")
        np.save(written[-1], images[i])
    return written


def describe(names: Sequence[str]) -> str:
    """One line per shipped model: name, dataset, kind and validation figures."""
    lines = []
    for name in names:
        info = json.loads((SHIPPED / name / "card.json").read_text())
        k = info["ensemble"]["members"]
        lines.append(
            f"{name}: {info['model']} on {info['dataset']} {info['size']}^3"
            f"{f', ensemble of {k}' if k > 1 else ''}; validation {_figure_text(info['val'])}"
        )
    return "\n".join(lines)
