"""A small convolutional network on synthetic images (torch).

The images and the batch order come from a ``torch.Generator`` seeded with ``seed``; the
weights' initial values come from torch's global generator, which the runtime seeds when
torch is imported. The weights are written with ``torch.save`` as a state dict of tensors
only (safetensors is not in the image).

It trains on a GPU when one is visible: harness hides the GPUs from a CPU run, so the same
code runs on the CPU there and on the GPU in a run with ``--gpus``. The data and the
initial weights are drawn on the CPU in both, so only the training arithmetic differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

_CLASSES = 4
_SIZE = 16


def train(
    output: Path,
    seed: int,
    inputs: dict[str, Path],
    steps: int = 30,
    batch_size: int = 32,
) -> dict[str, object]:
    del inputs  # the data is generated from the seed
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = _images(generator, 1024)
    test_x, test_y = _images(generator, 256)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * (_SIZE // 4) ** 2, _CLASSES),
    ).to(device)
    train_x, train_y = train_x.to(device), train_y.to(device)
    test_x, test_y = test_x.to(device), test_y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_function = nn.CrossEntropyLoss()
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        batch = torch.randint(0, train_x.shape[0], (batch_size,), generator=generator).to(device)
        optimizer.zero_grad()
        loss = loss_function(model(train_x[batch]), train_y[batch])
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean()
    # Saved from the CPU, so that the file loads (and compares) on a machine without a GPU.
    torch.save(model.to("cpu").state_dict(), output / "model.pt")
    metrics: dict[str, object] = {
        "final_loss": float(loss.item()),
        "test_accuracy": float(accuracy.item()),
        "steps": steps,
        "batch_size": batch_size,
        "parameters": sum(int(parameter.numel()) for parameter in model.parameters()),
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _images(generator: torch.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images with a faintly brighter quadrant; the quadrant is the class."""
    labels = torch.randint(0, _CLASSES, (count,), generator=generator)
    images = torch.randn(count, 1, _SIZE, _SIZE, generator=generator)
    half = _SIZE // 2
    for quadrant in range(_CLASSES):
        row, column = divmod(quadrant, 2)
        selected = labels == quadrant
        images[
            selected, :, row * half : row * half + half, column * half : column * half + half
        ] += 0.25
    return images, labels
