"""The peer for the training benchmark: the pipeline's networks in plain PyTorch, on the same data.

Runs in its own environment (PyTorch is not a dependency of the pipeline): `make bench-torch`
creates build/torch-venv and calls tools/bench_frameworks.py, which runs this script in it.

    python -m tools.bench_torch --network mlp --epochs 20 [--processed data/processed]

Reads data/processed/{train,validation}.npz (`images` (N, 28, 28) float32, `labels` one-hot),
trains with the pipeline's settings (Adam, batch 128, the network's dropout, a validation pass
after every epoch) and prints one JSON line: the seconds of each epoch (training and validation,
not the import or the data loading) and the last epoch's scores. Like the pipeline, it keeps
each epoch's mean training loss and accuracy and the validation loss and accuracy (the
history behind the training curves): the same work, written the way PyTorch users write it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional


def load(processed: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(processed / f"{split}.npz", allow_pickle=False) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    return torch.from_numpy(images), torch.from_numpy(labels.argmax(axis=1))


def notebook_mlp() -> nn.Module:
    """Flatten 784 -> Dense 128 ReLU -> Dropout 0.2 -> Dense 64 ReLU -> Dropout 0.2 -> Dense 10."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 10),
    )


class AugmentedCnn(nn.Module):
    """AUGMENTED_CNN of tools/bench_frameworks.py: random shift (10%), rotation (10 degrees)
    and zoom (10%), then two blocks of two 3x3 convolutions (32, then 64 filters) with batch norm
    and ReLU and a 2x2 max-pool, Dense 256 ReLU, Dropout 0.25, Dense 10."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for filters in (32, 64):
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                    nn.BatchNorm2d(filters),
                    nn.ReLU(),
                ]
                channels = filters
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(256, 10),
        )

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """A random affine transform per image, filled with black, like Keras' layers."""
        count = images.shape[0]
        angle = (torch.rand(count) * 2 - 1) * math.radians(10)
        scale = 1 + (torch.rand(count) * 2 - 1) * 0.1
        shift = (torch.rand(count, 2) * 2 - 1) * 0.1 * 2  # grid coordinates span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
        return functional.grid_sample(images, grid, padding_mode="zeros", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
        if self.training:
            images = self.augment(images)
        return self.head(self.features(images))


NETWORKS = {"mlp": notebook_mlp, "cnn-augmented": AugmentedCnn}


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--network", choices=sorted(NETWORKS), default="mlp")
    arguments.add_argument("--processed", type=Path, default=Path("data/processed"))
    arguments.add_argument("--epochs", type=int, default=20)
    arguments.add_argument("--batch-size", type=int, default=128)
    arguments.add_argument("--learning-rate", type=float, default=0.001)
    arguments.add_argument("--seed", type=int, default=42)
    args = arguments.parse_args()
    torch.manual_seed(args.seed)
    train_images, train_labels = load(args.processed, "train")
    validation_images, validation_labels = load(args.processed, "validation")
    model = NETWORKS[args.network]()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)

    epoch_seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for batch in torch.randperm(len(train_images)).split(args.batch_size):
            optimizer.zero_grad()
            logits = model(train_images[batch])
            loss = functional.cross_entropy(logits, train_labels[batch])
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)
            correct += (logits.detach().argmax(1) == train_labels[batch]).sum()
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(chunk) for chunk in validation_images.split(1024)])
        scores = {
            "loss": (loss_sum / len(train_images)).item(),
            "accuracy": (correct / len(train_images)).item(),
            "val_loss": functional.cross_entropy(logits, validation_labels).item(),
            "val_accuracy": (logits.argmax(1) == validation_labels).float().mean().item(),
        }
        epoch_seconds.append(time.perf_counter() - start)
    print(json.dumps({"epoch_seconds": epoch_seconds, "last_epoch": scores}))


if __name__ == "__main__":
    main()
