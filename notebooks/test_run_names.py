"""After the notebooks have run in this pytest session (nbval executes them in file order, and
this file sorts after them), their MLflow runs have distinct, descriptive names."""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient

from utilities.tracking import get_tracking_uri

# MLflow's generated names ("overjoyed-slug-911") are two words and a number.
GENERATED = re.compile(r"^[a-z]+-[a-z]+-\d+$")


def test_notebook_runs_have_distinct_descriptive_names():
    client = MlflowClient(get_tracking_uri())
    experiments = [e for e in client.search_experiments() if e.name[:2].isdigit()]
    if not experiments:
        pytest.skip("no notebook ran in this session's MLflow store")
    runs = client.search_runs([e.experiment_id for e in experiments], max_results=50_000)
    names = [run.info.run_name for run in runs]
    assert len(set(names)) == len(names), sorted(n for n in set(names) if names.count(n) > 1)
    assert not [name for name in names if GENERATED.match(name)], "generated run names"
