"""The committed search grids: every point names fields the adrenal config has."""

from pathlib import Path

import pytest

from configs import adrenal
from lmttm_jax import config as config_lib
from lmttm_jax.experiments import search

GRIDS = sorted((Path(__file__).parents[1] / "sweeps").glob("*.py"))


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.name)
def test_grid_points_apply_and_validate(grid):
    points = search.load_grid(grid)
    names = [search.point_name(p) for p in points]
    assert len(set(names)) == len(names), "a point is listed twice"
    base = adrenal.get_config("scale=tiny")
    for point in points:
        config = search.apply_point(base, point)
        config_lib.validate_config(config)
        for path, value in point.items():
            node = config
            for part in path.split("."):
                node = node[part]
            assert node == value
