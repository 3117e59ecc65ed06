"""Shared code of the dotlab notebooks: MovieLens data, splits and loaders, vector pairs and
Rendle et al.'s synthetic protocol, the dot-product MLP, device selection, MLflow tracking,
the trainer factory, the sweep runner and plots."""

from utilities.data import (
    DatasetError,
    DownloadError,
    get_dataset_dir,
    load_movies,
    load_ratings,
    load_torch_data,
)
from utilities.device import select_device
from utilities.models import (
    DotProductMLP,
    count_parameters,
    dead_unit_fractions,
    linear_gradient_norms,
)
from utilities.plotting import plot_training_curves
from utilities.reference import (
    NOISE_SD,
    TOTAL_SD,
    ReferenceData,
    dot_product_rmse,
    make_reference_data,
    model_rmse,
    train_reference_mlp,
)
from utilities.splits import TensorBatchLoader, get_data_loaders, split_train_test
from utilities.sweep import expand_grid, run_sweep
from utilities.synthetic import (
    FreshPairLoader,
    fixed_pair_loader,
    get_vector_pair_loaders,
    make_vector_pairs,
)
from utilities.tracking import (
    get_mlflow_logger,
    get_tracking_uri,
    load_experiment_runs,
    log_run_metrics,
    training_logs_to_df,
)
from utilities.training import DivergenceError, fit_tracked, make_trainer, seed_everything

__all__ = [
    "NOISE_SD",
    "TOTAL_SD",
    "DotProductMLP",
    "ReferenceData",
    "count_parameters",
    "dead_unit_fractions",
    "expand_grid",
    "fit_tracked",
    "linear_gradient_norms",
    "log_run_metrics",
    "make_reference_data",
    "dot_product_rmse",
    "model_rmse",
    "train_reference_mlp",
    "run_sweep",
    "DatasetError",
    "DivergenceError",
    "DownloadError",
    "FreshPairLoader",
    "TensorBatchLoader",
    "fixed_pair_loader",
    "get_data_loaders",
    "get_dataset_dir",
    "get_mlflow_logger",
    "get_tracking_uri",
    "get_vector_pair_loaders",
    "load_experiment_runs",
    "load_movies",
    "load_ratings",
    "load_torch_data",
    "make_trainer",
    "make_vector_pairs",
    "plot_training_curves",
    "seed_everything",
    "select_device",
    "split_train_test",
    "training_logs_to_df",
]
