"""Built-in architectures and user models by import path.

Every builder takes the input shape (without the batch dimension) and the number of classes, so a
checkpoint's ``iau.model`` metadata (name, args, input shape, classes) rebuilds the module alone.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from iau_cli.config import hidden_sizes_problem
from iau_cli.errors import ModelError
from iau_cli.io import usercode


class LogisticRegression(nn.Module):
    """A linear classifier on the flattened input."""

    def __init__(self, input_shape: list[int], num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(math.prod(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened input."""

    def __init__(self, input_shape: list[int], num_classes: int, hidden: list[int] | int = 128) -> None:
        super().__init__()
        problem = hidden_sizes_problem(hidden)
        if problem:
            raise ModelError(f"mlp: hidden sizes {problem}")
        sizes = [math.prod(input_shape)] + ([hidden] if isinstance(hidden, int) else list(hidden))
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class LeNet5(nn.Module):
    """LeNet-5 as in the IAU reference: conv 6@5×5, pool, conv 16@5×5, pool, fc 120, 84, classes."""

    def __init__(self, input_shape: list[int], num_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"lenet5 needs image input [channels, height, width], got shape {input_shape}")
        channels, height, width = input_shape
        out_h, out_w = (height - 4) // 2, (width - 4) // 2
        out_h, out_w = (out_h - 4) // 2, (out_w - 4) // 2
        if out_h < 1 or out_w < 1:
            raise ModelError(f"lenet5 needs images of at least 12×12, got {height}×{width}; set data.resize: [32, 32]")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * out_h * out_w, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), norm(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 layout (4 stages × 2 basic blocks) for small images, with a configurable width."""

    def __init__(self, input_shape: list[int], num_classes: int, width: int = 16, norm: str = "batch") -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ModelError(f"resnet18 needs image input [channels, height, width], got shape {input_shape}")
        if norm not in ("batch", "group"):
            raise ModelError(f"resnet18: norm must be 'batch' or 'group', got {norm!r}")

        def make_norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if norm == "batch" else nn.GroupNorm(min(8, channels), channels)

        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), make_norm(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(4):
            out_channels = width * 2**stage
            for block in range(2):
                stride = 2 if stage > 0 and block == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, make_norm))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x))
        return self.head(features.mean(dim=(2, 3)))


BUILTIN_MODELS: dict[str, type[nn.Module]] = {
    "logreg": LogisticRegression,
    "mlp": MLP,
    "lenet5": LeNet5,
    "resnet18": ResNet18,
}


def is_import_path(name: str) -> bool:
    """``package.module:Class`` names a user model; anything else must be a built-in name."""
    return ":" in name


def build_model(
    name: str,
    args: dict[str, Any],
    input_shape: list[int],
    num_classes: int,
    *,
    allow_import: bool = True,
    folder: str | None = None,
) -> nn.Module:
    """Build an architecture by built-in name or import path (imported from ``folder``, else from
    ``sys.path``).

    ``allow_import=False`` refuses import paths: a checkpoint from elsewhere must never make us
    import code unless the user said so (:mod:`iau_cli.io.usercode` decides).
    """
    if is_import_path(name):
        if not allow_import:
            raise ModelError(
                f"the checkpoint names user code {name!r} you have not trusted as it is now (importing it "
                "runs that code). Pass --trust-checkpoint-code if you trust it, or --config with your own "
                "model section; either is remembered for this exact code"
            )
        cls = usercode.load(name, folder)
    else:
        if name not in BUILTIN_MODELS:
            raise ModelError(f"unknown model {name!r}; built-in: {', '.join(BUILTIN_MODELS)}, or package.module:Class")
        cls = BUILTIN_MODELS[name]
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        # Checked before calling: a checkpoint must not get any callable (os:system) called.
        raise ModelError(f"model {name!r} is not a torch.nn.Module class (got {type(cls).__name__})")
    kwargs = dict(args)
    params = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "input_shape" in params or accepts_any:
        kwargs.setdefault("input_shape", list(input_shape))
    if "num_classes" in params or accepts_any:
        kwargs.setdefault("num_classes", num_classes)
    try:
        model = cls(**kwargs)
    except ModelError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {name!r}: bad arguments {sorted(args)}: {message}") from None
    return model


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def nonfinite(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """The names of floating-point tensors holding a NaN or an infinity (empty when all are finite)."""
    return [name for name, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
