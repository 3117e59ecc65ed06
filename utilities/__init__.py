"""Shared code of the dotlab notebooks, one name for each thing a notebook reaches for: MovieLens
data and splits, vector pairs and Rendle et al.'s protocol, the shared models, one training
function (`fit`), tuning over seeds, paired differences, ranking metrics, spread figures and the
MLflow record. Everything else lives in its module (`utilities.data`, `utilities.tracking`, ...)."""

from utilities.collab import (
    fit_surprise,
    mean_baseline_mse,
    predict_surprise,
    rating_scores,
    unseen_in_training,
)
from utilities.data import load_torch_data
from utilities.device import select_device, use_device
from utilities.experiments import run_sweep, summarise_settings, tune_extending, tune_over_seeds
from utilities.models import (
    CollabNN,
    DotProductBias,
    DotProductMLP,
    FastbookDotProductBias,
    MatrixFactorisation,
    count_parameters,
    dead_unit_fractions,
    sigmoid_range,
)
from utilities.plotting import bars_with_seeds, legend_outside, lines_with_seeds, seeds_with_mean
from utilities.ranking import (
    NegativeSampler,
    hit_rate,
    interaction_matrix,
    leave_one_out,
    ndcg,
    ranks_among,
    sample_unseen,
    score_all,
    to_pairs,
    user_gains,
)
from utilities.reference import make_reference_data, train_reference_mlp
from utilities.splits import get_data_loaders, get_rating_splits, split_train_test
from utilities.stats import (
    compare_paired,
    difference_of,
    joint_verdict,
    paired_difference,
    relate_verdicts,
    summarise_seeds,
)
from utilities.synthetic import FreshPairLoader, make_vector_pairs
from utilities.tracking import training_logs_to_df
from utilities.training import (
    EarlyStopping,
    Fit,
    evaluate,
    fit,
    get_thread_count,
    predict,
    seed_everything,
    torch_threads,
)

__all__ = ["CollabNN", "DotProductBias", "DotProductMLP", "EarlyStopping", "Fit"]
__all__ += ["FreshPairLoader", "NegativeSampler", "bars_with_seeds", "compare_paired"]
__all__ += ["count_parameters", "dead_unit_fractions", "difference_of", "evaluate", "fit"]
__all__ += ["fit_surprise", "get_data_loaders", "get_rating_splits"]
__all__ += ["get_thread_count", "hit_rate", "interaction_matrix", "leave_one_out", "legend_outside"]
__all__ += ["lines_with_seeds", "load_torch_data", "make_reference_data", "make_vector_pairs"]
__all__ += ["mean_baseline_mse", "ndcg", "paired_difference", "predict", "predict_surprise"]
__all__ += ["ranks_among", "run_sweep", "sample_unseen"]
__all__ += ["score_all", "seed_everything", "seeds_with_mean", "select_device", "sigmoid_range"]
__all__ += ["split_train_test", "summarise_seeds", "summarise_settings", "to_pairs"]
__all__ += ["torch_threads", "train_reference_mlp", "training_logs_to_df", "tune_extending"]
__all__ += ["tune_over_seeds", "unseen_in_training", "use_device", "user_gains", "joint_verdict"]
__all__ += ["relate_verdicts"]
__all__ += ["FastbookDotProductBias", "MatrixFactorisation", "rating_scores"]
