"""The MLP of the dot-product notebooks, and probes of what its ReLU layers are doing."""

from __future__ import annotations

import pytorch_lightning as L
import torch
from torch import nn
from torch.nn import functional as F


class EpochMeanLoss(L.LightningModule):
    """Logs `<stage>_loss` once per epoch as the mean over its examples.

    Summing on the device and logging once an epoch, instead of `self.log` on every step,
    saves Lightning's per-call bookkeeping (measured: a third of a small model's step time).
    """

    def record(self, stage: str, loss: torch.Tensor, n_examples: int) -> None:
        """Add one batch's mean `loss` over `n_examples` to this epoch's total."""
        sums = self.__dict__.setdefault("_epoch_sums", {})
        total, count = sums.get(stage, (0.0, 0))
        sums[stage] = (total + loss.detach() * n_examples, count + n_examples)

    def log_epoch_mean(self, stage: str) -> None:
        total, count = self.__dict__.setdefault("_epoch_sums", {}).pop(stage, (None, 0))
        if count:
            self.log(f"{stage}_loss", total / count)

    def on_train_epoch_end(self) -> None:
        self.log_epoch_mean("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_mean("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_mean("test")

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """The batch itself when its tensors are already on `device`: skips Lightning's
        generic walk over the batch on every step."""
        if isinstance(batch, tuple | list) and all(
            isinstance(t, torch.Tensor) and t.device == device for t in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


class PairRegressor(EpochMeanLoss):
    """MSE on batches `(x, y, target)` of any model `forward(x, y) -> prediction`."""

    def step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        *inputs, target = batch
        loss = F.mse_loss(self(*inputs), target)
        self.record(stage, loss, len(target))
        return loss

    def training_step(self, batch, batch_idx):
        return self.step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self.step(batch, "val")

    def test_step(self, batch, batch_idx):
        self.step(batch, "test")


class DotProductMLP(PairRegressor):
    """An MLP on `[a, b]` (or `[a, b, a*b]`) predicting `a·b`, trained with MSE and Adam.

    `layer_sizes` are the hidden widths (empty: a single linear layer), ReLU between layers.
    """

    def __init__(
        self,
        dim: int,
        layer_sizes: list[int],
        learning_rate: float = 1e-3,
        incl_multiplication: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        sizes = [(3 if incl_multiplication else 2) * dim, *layer_sizes, 1]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no ReLU after the output layer

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        features = [a, b, a * b] if self.hparams.incl_multiplication else [a, b]
        return self.net(torch.cat(features, dim=1)).squeeze(1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate, fused=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def relu_outputs(net: nn.Sequential, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The output of every `nn.ReLU` in `net` for a batch of `inputs`, in layer order."""
    outputs = []
    for layer in net:
        inputs = layer(inputs)
        if isinstance(layer, nn.ReLU):
            outputs.append(inputs)
    return outputs


def dead_unit_fractions(net: nn.Sequential, inputs: torch.Tensor) -> list[float]:
    """Per ReLU layer, the fraction of units that output 0 for every one of `inputs`.

    A dead unit passes no gradient back, so whatever feeds only it stops learning.
    """
    return [(out == 0).all(dim=0).float().mean().item() for out in relu_outputs(net, inputs)]


def linear_gradient_norms(
    net: nn.Sequential, inputs: torch.Tensor, targets: torch.Tensor
) -> list[float]:
    """Per `nn.Linear` of `net`, the norm of its weight gradient of the MSE on one batch."""
    net.zero_grad()
    F.mse_loss(net(inputs).squeeze(1), targets).backward()
    norms = [layer.weight.grad.norm().item() for layer in net if isinstance(layer, nn.Linear)]
    net.zero_grad()
    return norms
