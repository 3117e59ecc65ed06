"""Log `count` small fits named `<tag> <i>` to the store `MLFLOW_TRACKING_URI` names (run by
tests/test_tracking.py in several processes at once)."""

import sys

from scale_case import fit_scale

if __name__ == "__main__":
    tag, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        fit_scale(experiment="concurrent", run_name=f"{tag} {i}")
