"""Shared code of the dotlab notebooks: MovieLens data, splits and loaders, vector pairs,
device selection, MLflow tracking, the trainer factory, plots and the rating models."""

from utilities.collab import (
    COMPARISON_MODELS,
    CollabNN,
    RatingModel,
    SigmoidDot,
    count_parameters,
    evaluate_mean_baseline,
    evaluate_mse,
    get_embedding_size,
    get_rating_range,
    load_comparison,
    log_comparison,
    make_collab_nn,
    make_sigmoid_dot,
    predict_ratings,
    sigmoid_range,
    train_for_comparison,
    train_rating_model,
)
from utilities.data import (
    DatasetError,
    DownloadError,
    get_dataset_dir,
    load_movies,
    load_ratings,
    load_torch_data,
)
from utilities.device import select_device
from utilities.plotting import plot_training_curves
from utilities.splits import TensorBatchLoader, get_data_loaders, split_train_test
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
    training_logs_to_df,
)
from utilities.training import make_trainer, seed_everything

__all__ = [
    "COMPARISON_MODELS",
    "CollabNN",
    "RatingModel",
    "SigmoidDot",
    "count_parameters",
    "evaluate_mean_baseline",
    "evaluate_mse",
    "get_embedding_size",
    "get_rating_range",
    "load_comparison",
    "log_comparison",
    "make_collab_nn",
    "make_sigmoid_dot",
    "predict_ratings",
    "sigmoid_range",
    "train_for_comparison",
    "train_rating_model",
    "DatasetError",
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
