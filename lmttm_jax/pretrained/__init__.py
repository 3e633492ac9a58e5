"""Models shipped inside the package: predict and explain without training first.

  python main.py --mode=predict --pretrained=adrenalmnist3d --input=scans/ --output=p.csv
  python main.py --mode=explain --pretrained=adrenalmnist3d --input=scan.nii.gz
  python -m lmttm_jax.pretrained list
  python -m lmttm_jax.pretrained export --workdir=RUN --name=NAME --command="..." ...

A pretrained model is the folder `lmttm_jax/pretrained/<name>/` of a finished run:

  config.json         the run's config without the fields of the machine that trained
                      it (`data.root`, `train.compile_cache`: loading takes this
                      machine's defaults; predict and explain read no dataset)
  member_<i>.msgpack  member i's parameters as predict uses them (the moving average
                      when the run kept one), `flax.serialization` msgpack, one per
                      ensemble member (one file for a single run)
  card.json           where it comes from: the command, machine and wall time given to
                      `export`, and the figures of the run's `results.json`
  README.md           the card in words

Predictions equal those of the run directory it was exported from (the same
parameters, config and `lmttm_jax.predict` code). Explain shows one model's memory:
for an ensemble, member 0's (its own probabilities; the ensemble's are predict's).
"""

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization, traverse_util

from lmttm_jax import compilation, config_check, ensemble, evaluate, explain, predict, train
from lmttm_jax import data as data_lib
from lmttm_jax.models import build_model
from lmttm_jax.workdir import Workdir, WorkdirError

MODELS_DIR = Path(__file__).parent
MACHINE_FIELDS = (("data", "root"), ("train", "compile_cache"))
DEFAULT_EXPLAIN_OUTPUT = "explain.png"  # in the working directory: there is no run folder


def available() -> list[str]:
    """The names of the shipped models (folders of this package holding a card)."""
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "card.json").is_file())


def model_dir(name: str) -> Path:
    """The folder of the shipped model `name` (ValueError naming the available ones)."""
    if name not in available():
        raise ValueError(
            f"--pretrained={name}: no such pretrained model; available: "
            f"{', '.join(available()) or 'none'}"
        )
    return MODELS_DIR / name


def member_path(directory: Path, index: int) -> Path:
    return directory / f"member_{index}.msgpack"


# ----------------------------------------------------------------------------- export


def _portable_config(config: ml_collections.ConfigDict) -> dict:
    """The config as JSON without the machine's fields (`MACHINE_FIELDS`)."""
    raw = json.loads(config.to_json_best_effort())
    for section, field in MACHINE_FIELDS:
        raw[section].pop(field, None)
    return raw


def _figures(metrics: dict | None) -> dict | None:
    return None if metrics is None else {k: metrics[k] for k in ("auc", "acc")}


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
        "ensemble": {"members": ensemble.size(config), "mode": config.train.ensemble_mode},
        **provenance,
        "val": _figures(results["val"]),
        "val_kind": results.get("val_kind", "the validation split that selected the epoch"),
        "test": _figures(results.get("test")),
        "test_missing": results.get("test_missing"),
        "members": [
            {
                "member": m["member"],
                "seed": m["seed"],
                **({"fold": m["fold"]} if "fold" in m else {}),
                "best_epoch": m["best_epoch"],
                "val": _figures(m["val"]),
                "test": _figures(m.get("test")),
            }
            for m in members
        ],
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
        "    python main.py --mode=explain --pretrained=" + name + " --input=VOLUME",
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
    config = run.read_config()
    if config.data.name == data_lib.FOLDER_FLAG:
        raise WorkdirError(
            f"{workdir}: a folder dataset's run cannot be exported (its classes live in "
            f"its labels.csv); predict with --workdir={workdir}"
        )
    if not run.results_path.is_file():
        raise WorkdirError(f"{run.results_path} not found: export a finished run")
    restored = predict.restore_run(workdir)
    params = restored.members or (restored.params,)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    evaluate.write_json(tmp / "config.json", _portable_config(config))
    for i, p in enumerate(params):
        member_path(tmp, i).write_bytes(serialization.msgpack_serialize(jax.device_get(p)))
    info = card(config, run.read_results(), provenance)
    evaluate.write_json(tmp / "card.json", info)
    evaluate.atomic_write_text(tmp / "README.md", readme(name or out.name, info))
    old = out.with_name(f".{out.name}.export-old")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- restore


def _load_params(path: Path, abstract: Any) -> Any:
    """The parameters in `path`, checked against the model's `abstract` tree."""
    if not path.is_file():
        raise WorkdirError(f"{path} not found: the pretrained folder is incomplete")
    try:
        tree = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack's errors have no common base
        raise WorkdirError(f"{path}: not a flax msgpack file ({err})") from err
    want = {k: (v.shape, v.dtype) for k, v in traverse_util.flatten_dict(abstract).items()}
    flat = traverse_util.flatten_dict(tree) if isinstance(tree, dict) else {}
    got = {k: (np.shape(v), np.asarray(v).dtype) for k, v in flat.items()}
    if got != want:
        wrong = sorted("/".join(k) for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        raise WorkdirError(
            f"{path} does not hold the parameters of the config's model "
            f"(differs at {wrong[0]}{' and others' if len(wrong) > 1 else ''})"
        )
    return jax.device_put(tree)


def restore(source: str | Path) -> predict.RestoredRun:
    """The model shipped as `source` (a name of `available()`, or an exported folder)
    as predict's `RestoredRun`: an ensemble's members in `members`."""
    directory = Path(source) if Path(source).is_dir() else model_dir(str(source))
    raw = json.loads((directory / "config.json").read_text())
    raw["data"]["root"] = str(data_lib.default_root())
    try:
        config = config_check.validate_config(raw)
    except config_check.ConfigError as err:
        raise config_check.ConfigError(f"{directory / 'config.json'}: {err}") from err
    compilation.setup(config.train.compile_cache)
    info = data_lib.get_info(config.data.name)
    model = build_model(config.model, info.n_classes, config.data.size)
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = train.abstract_train_state(config, model, sharding).params
    members = tuple(
        _load_params(member_path(directory, i), abstract) for i in range(ensemble.size(config))
    )
    best_epoch = json.loads((directory / "card.json").read_text())["members"][0]["best_epoch"]
    if len(members) == 1:
        return predict.RestoredRun(config, info, model, members[0], best_epoch)
    return predict.RestoredRun(config, info, model, None, best_epoch, members)


# ----------------------------------------------------------------------------- commands


def predict_command(source: str | Path, input_path: str | Path, output: str | None) -> int:
    """`--mode=predict --pretrained=name` (`source`: a name or an exported folder): as
    `predict.predict_command`."""
    files = predict.list_inputs(input_path)
    return predict.write_predictions(restore(source), files, output)


def explain_command(
    source: str | Path, input_path: str | Path, out: str | Path | None
) -> list[Path]:
    """`--mode=explain --pretrained=name` (`source`: a name or an exported folder): the
    figures of `explain.explain_file` (default `explain.png` here); an ensemble's
    member 0 is explained."""
    run = restore(source)
    name, title = Path(source).name, Path(input_path).name
    if run.members:
        print(
            f"note: {name} is an ensemble of {len(run.members)}; explaining member 0 "
            f"(its own probabilities; predict averages all members)",
            flush=True,
        )
        run = dataclasses.replace(run, params=run.members[0], members=())
        title = f"{title} ({name} member 0)"
    return explain.explain_file(run, input_path, out or DEFAULT_EXPLAIN_OUTPUT, None, title)


def describe(names: Sequence[str]) -> str:
    """One line per shipped model: name, dataset, kind and validation figures."""
    lines = []
    for name in names:
        info = json.loads((MODELS_DIR / name / "card.json").read_text())
        k = info["ensemble"]["members"]
        lines.append(
            f"{name}: {info['model']} on {info['dataset']} {info['size']}^3"
            f"{f', ensemble of {k}' if k > 1 else ''}; validation {_figure_text(info['val'])}"
        )
    return "\n".join(lines)
