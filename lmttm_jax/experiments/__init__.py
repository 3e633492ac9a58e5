"""What is built on single runs: ensembles, sweeps, the protocol table, runs trained in
child processes, and workers sharing the runs of one command."""

from pathlib import Path

import ml_collections

from lmttm_jax import train
from lmttm_jax.experiments import ensemble


def train_run(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """The results of the run of the checked `config` in `workdir`, trained, resumed or
    read back, as every command trains: an ensemble's members (`ensemble`), else one
    model (`lmttm_jax.train`)."""
    if config.train.ensemble > 1:
        return ensemble.train_ensemble(config, workdir)
    return train.train_and_evaluate(config, workdir)
