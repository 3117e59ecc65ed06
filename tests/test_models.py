"""The dot-product MLP and the probes of its ReLU layers; the rating models and their scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from utilities.collab import rating_scores
from utilities.models import (
    DotProductMLP,
    FastbookDotProductBias,
    MatrixFactorisation,
    count_parameters,
    dead_unit_fractions,
    linear_gradient_norms,
    relu_outputs,
)


@pytest.mark.parametrize(
    ("dim", "layers", "feature", "expected"),
    [
        (4, [], False, 8 + 1),
        (4, [], True, 12 + 1),
        (2, [3], False, (4 * 3 + 3) + (3 + 1)),
        (3, [1] * 3, True, (9 + 1) + 2 * (1 + 1) + (1 + 1)),
    ],
)
def test_parameter_counts_by_hand(dim, layers, feature, expected):
    model = DotProductMLP(dim, layers, incl_multiplication=feature)
    assert count_parameters(model) == expected


def test_no_relu_after_the_output_layer():
    net = DotProductMLP(2, [5, 5]).net
    assert [type(layer) for layer in net] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]


def test_a_linear_model_with_unit_weights_on_the_product_is_the_dot_product():
    model = DotProductMLP(3, [], incl_multiplication=True)
    with torch.no_grad():
        model.net[0].weight.copy_(torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1.0]]))
        model.net[0].bias.zero_()
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    assert torch.allclose(model(a, b), (a * b).sum(1))


def test_forward_by_hand_on_a_then_b():
    torch.manual_seed(0)
    model = DotProductMLP(2, [3])
    a, b = torch.randn(5, 2), torch.randn(5, 2)
    first, last = model.net[0], model.net[2]
    hidden = torch.relu(torch.cat([a, b], dim=1) @ first.weight.T + first.bias)
    torch.testing.assert_close(model(a, b), (hidden @ last.weight.T + last.bias).squeeze(1))
    assert model(a, b).shape == (5,)


def test_relu_outputs_match_a_manual_forward_pass():
    torch.manual_seed(0)
    net = DotProductMLP(2, [3, 2]).net
    x = torch.randn(7, 4)
    first = torch.relu(net[0](x))
    second = torch.relu(net[2](first))
    outputs = relu_outputs(net, x)
    assert len(outputs) == 2
    assert torch.equal(outputs[0], first) and torch.equal(outputs[1], second)


def test_dead_unit_fractions_count_units_zero_on_every_input():
    net = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0], [0.0], [0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0, 1.0]))
    x = torch.tensor([[-2.0], [3.0]])
    # unit 0: relu(x) is 3 for x=3; unit 1: relu(-x) is 2 for x=-2; unit 2 always 0; unit 3 always 1
    assert dead_unit_fractions(net, x) == [0.25]


def test_a_dead_layer_stops_every_gradient_before_it():
    net = DotProductMLP(2, [3, 1, 3]).net
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.fill_(-1.0)  # the width-1 layer is dead for every input
    x, y = torch.randn(16, 4), torch.randn(16)
    norms = linear_gradient_norms(net, x, y)
    assert norms[0] == norms[1] == 0
    assert norms[3] == 0  # the output layer sees only a constant, but its bias learns
    assert net[0].weight.grad is None  # gradients are cleared afterwards
    assert dead_unit_fractions(net, x)[1] == 1.0


def test_matrix_factorisation_by_hand_and_without_factors_the_biases_alone():
    torch.manual_seed(0)
    model = MatrixFactorisation(4, 3, 2, mean=3.5)
    users, movies = torch.tensor([0, 3, 3]), torch.tensor([2, 2, 0])
    by_hand = [
        3.5
        + model.user_bias[u].item()
        + model.movie_bias[m].item()
        + sum(model.user_factors[u, k].item() * model.movie_factors[m, k].item() for k in range(2))
        for u, m in zip(users.tolist(), movies.tolist(), strict=True)
    ]
    assert torch.allclose(model(users, movies), torch.tensor(by_hand), atol=1e-6)
    biases = MatrixFactorisation(4, 3, 0, mean=3.5)
    expected = 3.5 + biases.user_bias[users] + biases.movie_bias[movies]
    assert torch.equal(biases(users, movies), expected)
    assert sum(p.numel() for p in biases.parameters()) == 4 + 3


def test_fastbooks_model_is_a_stretched_sigmoid_of_the_dot_product_and_both_biases():
    torch.manual_seed(0)
    model = FastbookDotProductBias(4, 3, 2, y_range=(0.0, 5.5))
    u, m = 1, 2
    dot = (model.user_factors.weight[u] * model.movie_factors.weight[m]).sum()
    logit = dot + model.user_bias.weight[u, 0] + model.movie_bias.weight[m, 0]
    expected = 5.5 / (1 + torch.exp(-logit))
    assert torch.allclose(model(torch.tensor([u]), torch.tensor([m])), expected.reshape(1))


def test_rating_scores_by_hand_on_four_ratings_one_of_them_cold():
    predictions = torch.tensor([3.0, 4.0, 2.0, 5.0])
    targets = torch.tensor([3.0, 3.0, 4.0, 4.0])
    cold = torch.tensor([False, False, False, True])
    scores = rating_scores(predictions, targets, cold)
    assert scores["test_rmse"] == pytest.approx(((0 + 1 + 4 + 1) / 4) ** 0.5)
    assert scores["seen_rmse"] == pytest.approx(((0 + 1 + 4) / 3) ** 0.5)
    assert scores["unseen_rmse"] == pytest.approx(1.0)
    assert scores["unseen_prediction"] == pytest.approx(5.0)
