"""The rating models, their evaluation, training helper and the shared comparison."""

from __future__ import annotations

import uuid

import pytest
import torch

from utilities.collab import (
    COMPARISON_MODELS,
    CollabNN,
    Embedding,
    SigmoidDot,
    evaluate_mean_baseline,
    evaluate_mse,
    get_embedding_size,
    get_rating_range,
    load_comparison,
    log_comparison,
    logit_in_range,
    make_collab_nn,
    make_sigmoid_dot,
    predict_ratings,
    sigmoid_range,
    train_rating_model,
)
from utilities.splits import BatchGroups, TensorBatchLoader
from utilities.tracking import get_client
from utilities.training import make_trainer


def tiny_loaders(seed: int = 0, n: int = 200) -> tuple[TensorBatchLoader, ...]:
    """Ratings of 10 users × 8 movies from a known rank-1 pattern, split 60/20/20."""
    gen = torch.Generator().manual_seed(seed)
    users, movies = torch.randint(10, (n,), generator=gen), torch.randint(8, (n,), generator=gen)
    ratings = (3 + (users - 4.5) * (movies - 3.5) / 10).clamp(0.5, 5)
    parts = [slice(0, 120), slice(120, 160), slice(160, n)]
    return tuple(
        TensorBatchLoader(users[p], movies[p], ratings[p], batch_size=32, shuffle=i == 0, seed=seed)
        for i, p in enumerate(parts)
    )


def test_sigmoid_range_and_its_inverse():
    x = torch.tensor([-50.0, 0.0, 50.0])
    assert sigmoid_range(x, 0.0, 5.5).tolist() == pytest.approx([0.0, 2.75, 5.5])
    for value in (0.5, 3.5, 5.0):
        logit = logit_in_range(value, 0.0, 5.5)
        assert sigmoid_range(torch.tensor(logit), 0.0, 5.5).item() == pytest.approx(value)


def test_logit_in_range_rejects_the_asymptotes():
    """A sigmoid reaches neither end of its range: the reason the rating range is widened."""
    with pytest.raises(ValueError, match="strictly inside"):
        logit_in_range(5.0, 0.5, 5.0)


def test_rating_range_is_widened_on_both_sides():
    assert get_rating_range(torch.tensor([0.5, 3.0, 5.0])) == (0.0, 5.5)
    assert get_rating_range(torch.tensor([1.0, 5.0]), margin=0.0) == (1.0, 5.0)
    with pytest.raises(ValueError, match="non-negative"):
        get_rating_range(torch.tensor([1.0]), margin=-1)


def test_embedding_size_rule_of_thumb():
    assert get_embedding_size(610) == round(1.6 * 610**0.56) == 58
    assert get_embedding_size(1) == 2
    assert get_embedding_size(10**7) == 600  # capped
    with pytest.raises(ValueError, match="positive"):
        get_embedding_size(0)


def test_sigmoid_dot_is_the_row_wise_dot_product():
    model = SigmoidDot(4, 3, 2, y_range=(0.0, 5.5), mean_rating=3.5)
    users, movies = torch.tensor([0, 3, 3]), torch.tensor([2, 0, 2])
    full = model.user_factors.weight @ model.movie_factors.weight.T  # every user × movie
    dots = full[users, movies]
    by_hand = sigmoid_range(model.linear.weight[0, 0] * dots + model.linear.bias[0], 0.0, 5.5)
    torch.testing.assert_close(model(users, movies), by_hand)


def test_models_start_at_the_mean_rating_with_zero_embeddings():
    dot = SigmoidDot(4, 3, 2, y_range=(0.0, 5.5), mean_rating=3.5, init_std=0.0)
    nn_model = CollabNN((4, 2), (3, 5), 6, y_range=(0.0, 5.5), mean_rating=3.5, init_std=0.0)
    nn_model.layers[-1].weight.data.zero_()
    users, movies = torch.tensor([0, 1, 3]), torch.tensor([2, 2, 0])
    for model in (dot, nn_model):
        torch.testing.assert_close(model(users, movies), torch.full((3,), 3.5))


def test_collab_nn_concatenates_along_features():
    model = CollabNN((4, 2), (3, 5), 6, y_range=(0.0, 5.5), mean_rating=3.5)
    users, movies = torch.tensor([0, 1, 3]), torch.tensor([2, 2, 0])
    assert model.layers[0].in_features == 2 + 5
    joined = torch.cat([model.user_factors(users), model.movie_factors(movies)], dim=1)
    by_hand = sigmoid_range(model.layers(joined).squeeze(1), 0.0, 5.5)
    torch.testing.assert_close(model(users, movies), by_hand)


def test_evaluation_ignores_the_loader_shuffle():
    """The training loader reshuffles each epoch; predictions must still line up with ratings."""
    train, _, _ = tiny_loaders()
    model = SigmoidDot(10, 8, 3, y_range=(0.0, 5.5), mean_rating=3.0)
    users, movies, ratings = train.tensors
    with torch.no_grad():
        expected = ((model(users, movies) - ratings) ** 2).mean().item()
    assert evaluate_mse(model, train) == pytest.approx(expected)
    assert predict_ratings(model, train).shape == ratings.shape


def test_mean_baseline_by_hand():
    train = TensorBatchLoader(
        torch.zeros(2), torch.zeros(2), torch.tensor([1.0, 3.0]), batch_size=1
    )
    other = TensorBatchLoader(
        torch.zeros(2), torch.zeros(2), torch.tensor([2.0, 5.0]), batch_size=1
    )
    assert evaluate_mean_baseline(train, other) == pytest.approx((0 + 9) / 2)
    assert evaluate_mean_baseline(train, train) == pytest.approx(1.0)


def test_recipes_build_their_models():
    ratings = torch.tensor([0.5, 4.0, 5.0])
    dot, nn_model = make_sigmoid_dot(10, 8, ratings), make_collab_nn(10, 8, ratings)
    assert dot.hparams.y_range == nn_model.hparams.y_range == (0.0, 5.5)
    assert nn_model.user_factors.weight.shape == (10, get_embedding_size(10))
    assert make_sigmoid_dot(10, 8, ratings, n_factors=3).user_factors.weight.shape == (10, 3)


def test_embedding_matches_nn_embedding_values_and_gradients():
    torch.manual_seed(0)
    ours = Embedding(6, 3)
    reference = torch.nn.Embedding(6, 3)
    reference.weight.data.copy_(ours.weight.data)
    ids = torch.tensor([[0, 5, 5], [2, 0, 5]])  # repeated ids: their gradients add up
    upstream = torch.randn(2, 3, 3)
    assert torch.equal(ours(ids), reference(ids))
    (ours(ids) * upstream).sum().backward()
    (reference(ids) * upstream).sum().backward()
    assert torch.allclose(ours.weight.grad, reference.weight.grad, atol=1e-6)
    assert ours.weight.grad[1].abs().sum() == 0  # rows not looked up get no gradient


def fit_sigmoid_dot(train: TensorBatchLoader | BatchGroups, tmp_path) -> tuple[SigmoidDot, int]:
    """A tiny `SigmoidDot` after 2 epochs on `train`, and the trainer's global step."""
    torch.manual_seed(0)
    model = SigmoidDot(10, 8, 3, y_range=(0.0, 5.5), mean_rating=3.0, init_std=0.1)
    trainer = make_trainer(max_epochs=2, default_root_dir=tmp_path)
    trainer.fit(model, train)
    return model, trainer.global_step


def test_grouped_batches_train_exactly_as_one_batch_per_step(tmp_path):
    """Handing Lightning 3 batches at a time changes nothing but the number of its steps."""
    single, single_steps = fit_sigmoid_dot(tiny_loaders()[0], tmp_path)
    grouped, grouped_steps = fit_sigmoid_dot(BatchGroups(tiny_loaders()[0], 3), tmp_path)
    assert single_steps == grouped_steps == 2 * 4  # one Adam step per batch of 32 of 120 rows
    for a, b in zip(single.parameters(), grouped.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    initial = SigmoidDot(10, 8, 3, y_range=(0.0, 5.5), mean_rating=3.0, init_std=0.1)
    assert not torch.equal(initial.user_factors.weight, grouped.user_factors.weight)  # it trained


def test_grouped_training_logs_the_mean_over_ratings(tmp_path):
    """Uneven batches (32, 32, 32, 24) in groups of 2: the logged epoch loss is the mean over
    all 120 ratings, not a mean of batch or group means (lr 0 keeps the model fixed)."""
    torch.manual_seed(0)
    model = SigmoidDot(10, 8, 3, y_range=(0.0, 5.5), mean_rating=3.0, init_std=0.5)
    model.learning_rate = 0.0
    train = tiny_loaders()[0]
    trainer = make_trainer(max_epochs=1, default_root_dir=tmp_path)
    trainer.fit(model, BatchGroups(train, 2))
    logged = trainer.callback_metrics["train_loss"].item()
    assert logged == pytest.approx(evaluate_mse(model, train), rel=1e-6)


def test_train_rating_model_logs_metrics_and_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaders = tiny_loaders()
    torch.manual_seed(0)
    model = SigmoidDot(10, 8, 3, y_range=(0.0, 5.5), mean_rating=3.0, init_std=0.1)
    model.learning_rate = 0.05
    run_id = train_rating_model(
        model, loaders, experiment="test_collab", tags={"t": "1"}, max_epochs=15, patience=3
    )
    metrics = get_client().get_run(run_id).data.metrics
    assert metrics["test_mse"] == pytest.approx(evaluate_mse(model, loaders[2]), rel=1e-5)
    assert metrics["n_params"] == 10 * 3 + 8 * 3 + 2
    history = get_client().get_metric_history(run_id, "val_loss")
    assert metrics["val_mse"] == pytest.approx(min(m.value for m in history), rel=1e-4)  # best kept
    artifacts = [a.path for a in get_client().list_artifacts(run_id, "checkpoints")]
    assert len(artifacts) == 1 and artifacts[0].endswith(".ckpt")


def test_comparison_keeps_the_latest_row_per_model_in_fixed_order():
    dataset = f"test-{uuid.uuid4().hex[:8]}"
    for name, mse in [("CollabNN", 0.9), ("mean baseline", 1.0), ("CollabNN", 0.81)]:
        log_comparison(
            name, dataset=dataset, split_seed=1, test_mse=mse, n_params=1, train_seconds=0
        )
    log_comparison(
        "sigmoid dot", dataset=dataset, split_seed=2, test_mse=0.5, n_params=1, train_seconds=0
    )
    table = load_comparison(dataset, split_seed=1)
    assert table.get_column("model").to_list() == ["mean baseline", "CollabNN"]
    assert table.get_column("test_rmse").to_list() == pytest.approx([1.0, 0.9])
    assert load_comparison("no-such-dataset", split_seed=1).is_empty()
    with pytest.raises(ValueError, match=str(COMPARISON_MODELS[0])):
        log_comparison(
            "svd", dataset=dataset, split_seed=1, test_mse=1, n_params=1, train_seconds=0
        )
