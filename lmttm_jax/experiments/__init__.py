"""What is built on single runs: ensembles, sweeps, the protocol table, runs trained in
child processes, and workers sharing the runs of one command.

`train_run(config, workdir)` is the training of a checked config that every command
uses: a finished run is read back (after checking it was trained with `config`), an
ensemble config trains its members (`ensemble`), any other trains one model
(`lmttm_jax.train`).
"""

from pathlib import Path

import ml_collections

from lmttm_jax import train
from lmttm_jax.experiments import ensemble


def train_run(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """The results of the run of `config` in `workdir`: read back, or trained (resumed)."""
    if config.train.ensemble > 1:
        return ensemble.train_ensemble(config, workdir)
    finished = train.finished_results(config, workdir)
    return finished if finished is not None else train.train_and_evaluate(config, workdir)
