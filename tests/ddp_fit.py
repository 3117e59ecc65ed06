"""Train notebook 04's `DotProductBias` on the bundled ratings through `fit` on `--devices` CPU
processes (DDP over gloo when more than one) and write what each process got as JSON.

    python tests/ddp_fit.py OUT_DIR [--devices 2]

`tests/test_ddp.py` runs it; Lightning's DDP launcher starts the script again for every process
but the first, so it must run as a script, not inside pytest.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from utilities import fit, load_torch_data, seed_everything
from utilities.models import DotProductBias
from utilities.splits import get_rating_splits
from utilities.training import evaluate

EXPERIMENT = "ddp-test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()
    ratings, users, movies = load_torch_data()
    train, val, _ = get_rating_splits(ratings, seed=42)
    seed_everything(0)
    model = DotProductBias(users.height, movies.height, 16)
    distributed = {"devices": args.devices, "strategy": "ddp"} if args.devices > 1 else {}
    result = fit(
        model,
        train,
        val,
        epochs=3,
        lr=1e-2,
        weight_decay=1e-4,
        batch_size=1024,
        experiment=EXPERIMENT,
        run_name=f"DotProductBias on {args.devices} process(es)",
        accelerator="cpu",
        **distributed,
    )
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning in the processes it starts
    report = {
        "history": result.history.to_dicts(),
        "run_id": result.run_id,
        "val_mse": evaluate(result.model, val),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), args.out / f"rank{rank}.pt")
    (args.out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
