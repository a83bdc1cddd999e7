"""Elastic MLP supernet and its static subnets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.mlp import MLPSpace
from search_spaces.nn.base import Supernet, Unit
from search_spaces.nn.elastic import ElasticBatchNorm1d, ElasticLinear


def build_static_mlp(space: MLPSpace, arch: Mapping[str, int]) -> nn.Sequential:
    """Flatten, then Linear(no bias) + BatchNorm1d + ReLU per layer, Dropout, Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    prev = space.in_features
    for w in space.layer_widths(arch):
        layers += [nn.Linear(prev, w, bias=False), nn.BatchNorm1d(w), nn.ReLU()]
        prev = w
    layers += [nn.Dropout(space.dropout), nn.Linear(prev, space.num_classes)]
    return nn.Sequential(*layers)


def copy_bn(dst: nn.Module, src: nn.Module) -> None:
    """Copy the first ``dst.num_features`` channels of BN ``src`` (params and running stats)."""
    assert isinstance(dst, nn.modules.batchnorm._BatchNorm)
    assert isinstance(src, nn.modules.batchnorm._BatchNorm)
    c = dst.num_features
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[:c])
    dst_n, src_n = dst.num_batches_tracked, src.num_batches_tracked
    if isinstance(dst_n, torch.Tensor) and isinstance(src_n, torch.Tensor):
        dst_n.copy_(src_n)


class MLPSupernet(Supernet):
    space: MLPSpace

    def __init__(self, space: MLPSpace):
        super().__init__(space)
        wmax = max(space.widths)
        self.linears = nn.ModuleList(
            [
                ElasticLinear(space.in_features if i == 0 else wmax, wmax, bias=False)
                for i in range(space.max_depth)
            ]
        )
        self.bns = nn.ModuleList([ElasticBatchNorm1d(wmax) for _ in range(space.max_depth)])
        self.classifier = ElasticLinear(wmax, space.num_classes, bias=True)
        self._widths: list[int] = []
        self.set_active(space.max_arch())

    def _apply_arch(self, arch: dict[str, int]) -> None:
        self._widths = self.space.layer_widths(arch)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(x)

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.shape[1] != self.space.in_features:
            raise ValueError(
                f"mlp supernet expects {self.space.in_features} input features per sample "
                f"(option in_features), got {x.shape[1]}"
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._flat(x)
        for lin, bn, w in zip(self.linears, self.bns, self._widths, strict=False):
            x = F.relu(bn(lin(x, w)))
        x = F.dropout(x, self.space.dropout, self.training)
        out: torch.Tensor = self.classifier(x, self.space.num_classes)
        return out

    @torch.no_grad()
    def extract(self, arch: Mapping[str, int]) -> nn.Module:
        static = build_static_mlp(self.space, arch)
        mods = list(static)
        prev = self.space.in_features
        for i, w in enumerate(self.space.layer_widths(arch)):
            lin, bn = mods[1 + 3 * i], mods[2 + 3 * i]
            assert isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d)
            lin.weight.copy_(self._linear(i).weight[:w, :prev])
            copy_bn(bn, self.bns[i])
            prev = w
        head = mods[-1]
        assert isinstance(head, nn.Linear)
        head.weight.copy_(self.classifier.weight[:, :prev])
        head.bias.copy_(self.classifier.bias)  # type: ignore[arg-type]
        static.train(self.training)
        return static

    @torch.no_grad()
    def reorder_channels(self) -> None:
        """Sort each layer's units by the L1 norm of the weights that read them.

        Exactly function preserving for full-depth archs; the classifier reads whichever layer
        is last, so shallower archs see the last layer's new order (run it once, before width
        shrinking, as Once-for-All does)."""
        n = len(self.linears)
        for i in range(n):
            reader = self._linear(i + 1) if i + 1 < n else self.classifier
            importance = reader.weight.abs().sum(0)
            perm = torch.argsort(importance, descending=True)
            lin = self._linear(i)
            lin.weight.copy_(lin.weight[perm])
            bn = self.bns[i]
            for name in ("weight", "bias", "running_mean", "running_var"):
                t = getattr(bn, name)
                t.copy_(t[perm])
            reader.weight.copy_(reader.weight[:, perm])

    def _linear(self, i: int) -> ElasticLinear:
        lin = self.linears[i]
        assert isinstance(lin, ElasticLinear)
        return lin


# ----- the registry's hooks (``register_space(..., nn="search_spaces.nn.mlp")``) -------------
def build_supernet(space: MLPSpace) -> MLPSupernet:
    return MLPSupernet(space)


def build_static(space: MLPSpace, arch: Mapping[str, int]) -> nn.Sequential:
    return build_static_mlp(space, arch)


def _linear_bn_relu(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


def latency_units(space: MLPSpace, arch: Mapping[str, int]) -> list[Unit]:
    """One unit per hidden layer (linear, BN, ReLU) and the classifier."""
    units = []
    prev = space.in_features
    for w in space.layer_widths(arch):
        units.append(
            Unit(f"linear_bn_relu|in={prev}|out={w}", (prev,), partial(_linear_bn_relu, prev, w))
        )
        prev = w
    units.append(
        Unit(
            f"classifier|in={prev}|out={space.num_classes}",
            (prev,),
            partial(nn.Linear, prev, space.num_classes),
        )
    )
    return units


def covering_archs(space: MLPSpace) -> Iterator[dict[str, int]]:
    """Every pair of consecutive widths appears (and every first width of a 1-layer net)."""
    big = space.max_arch()
    for w1 in space.widths:
        for w2 in space.widths:
            a = dict(big, depth=max(space.depths))
            for j in range(1, space.max_depth + 1):
                a[f"l{j}.width"] = w1 if j % 2 else w2
            yield space.canonical(a)
            if min(space.depths) == 1:
                yield space.canonical(dict(big, depth=1, **{"l1.width": w1}))
