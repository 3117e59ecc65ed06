"""Shared code of the dotlab notebooks: MovieLens data, splits and loaders, vector pairs and
Rendle et al.'s synthetic protocol, the dot-product MLP, one training function (`fit`), device
selection, the MLflow record and plots."""

from utilities.data import (
    DatasetError,
    DownloadError,
    get_dataset_dir,
    load_movies,
    load_ratings,
    load_torch_data,
)
from utilities.device import select_device, use_device
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
from utilities.splits import (
    TensorBatchLoader,
    get_data_loaders,
    get_rating_splits,
    split_train_test,
)
from utilities.sweep import expand_grid, run_sweep
from utilities.synthetic import (
    FreshPairLoader,
    fixed_pair_loader,
    get_vector_pair_loaders,
    make_vector_pairs,
)
from utilities.tracking import get_tracking_uri, load_experiment_runs, training_logs_to_df
from utilities.training import (
    DivergenceError,
    EarlyStopping,
    Fit,
    evaluate,
    fit,
    predict,
    seed_everything,
)

__all__ = [
    "NOISE_SD",
    "TOTAL_SD",
    "DatasetError",
    "DivergenceError",
    "DotProductMLP",
    "DownloadError",
    "EarlyStopping",
    "Fit",
    "FreshPairLoader",
    "ReferenceData",
    "TensorBatchLoader",
    "count_parameters",
    "dead_unit_fractions",
    "dot_product_rmse",
    "evaluate",
    "expand_grid",
    "fit",
    "fixed_pair_loader",
    "get_data_loaders",
    "get_dataset_dir",
    "get_rating_splits",
    "get_tracking_uri",
    "get_vector_pair_loaders",
    "linear_gradient_norms",
    "load_experiment_runs",
    "load_movies",
    "load_ratings",
    "load_torch_data",
    "make_reference_data",
    "make_vector_pairs",
    "model_rmse",
    "plot_training_curves",
    "predict",
    "run_sweep",
    "seed_everything",
    "select_device",
    "split_train_test",
    "train_reference_mlp",
    "training_logs_to_df",
    "use_device",
]
