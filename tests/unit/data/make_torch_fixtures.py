"""Writes the real ``torch.save`` fixtures the compare tests read.

Run with an interpreter that has torch (the tests themselves never import it):

    python tests/unit/data/make_torch_fixtures.py
"""

from pathlib import Path

import torch

HERE = Path(__file__).parent


def state() -> dict[str, object]:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, generator=generator)
    big = torch.arange(20, dtype=torch.int64)
    return {
        "model": {
            "layer.weight": torch.nn.Parameter(weight.clone()),
            "layer.bias": torch.zeros(4),
            "half": torch.linspace(-2, 2, 5).to(torch.float16),
            "brain": torch.tensor([1.0, -0.0, 3.5e-39, float("inf")]).to(torch.bfloat16),
            "strided": big[1:19:3],
            "transposed": weight.t(),
            "u16": torch.tensor([1, 2, 65535]).to(torch.uint16),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
        },
        "epoch": 3,
        "lr": 0.001,
        "tags": ["seeded", "cpu"],
    }


def main() -> None:
    base = state()
    torch.save(base, HERE / "torch_a.pt")
    changed = state()
    model = changed["model"]
    assert isinstance(model, dict)
    with torch.no_grad():
        weight = model["layer.weight"]
        weight[1, 2] = torch.nextafter(weight[1, 2], torch.tensor(10.0))
    changed["lr"] = 0.002
    torch.save(changed, HERE / "torch_b.pt")
    torch.save(torch.nn.Linear(2, 2), HERE / "torch_module.pt")


if __name__ == "__main__":
    main()
