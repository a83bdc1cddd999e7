"""MLP ensemble accuracy predictor (mean and spread across independently initialised members).

Members share the architecture (ReLU MLP) and the data; they differ in their initial weights,
which is enough for their disagreement to track the error on unseen archs. Training is full
batch Adam with weight decay on standardised targets; it is deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.base import SearchSpace
from workers.predictors.base import Predictor, register


def _net(n_in: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, 1))
    return nn.Sequential(*layers)


@register
class MLPEnsemblePredictor(Predictor):
    kind = "mlp"

    def __init__(
        self,
        space: SearchSpace,
        *,
        members: int = 5,
        hidden: Sequence[int] = (128, 128),
        epochs: int = 300,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        **kw: Any,
    ):
        super().__init__(space, **kw)
        if members < 1:
            raise ValueError(f"mlp predictor: members must be >= 1, got {members}")
        self.members = int(members)
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.nets: list[nn.Sequential] = []

    def _options(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "hidden": list(self.hidden),
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
        }

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        self.nets = []
        for m in range(self.members):
            torch.manual_seed(self.seed * 1000 + m)
            net = _net(x.shape[1], self.hidden)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = nn.functional.mse_loss(net(xt), yt)
                loss.backward()
                opt.step()
            net.eval()
            self.nets.append(net)

    @torch.no_grad()
    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = torch.as_tensor(x, dtype=torch.float32)
        preds = np.stack([net(xt).reshape(-1).double().numpy() for net in self.nets])
        return preds.mean(axis=0), preds.std(axis=0)

    def _arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for m, net in enumerate(self.nets):
            for k, v in net.state_dict().items():
                out[f"m{m}.{k}"] = v.detach().cpu().numpy()
        return out

    def _restore(self, arrays: Mapping[str, np.ndarray]) -> None:
        n_in = self.featurize.dim()
        self.nets = []
        for m in range(self.members):
            net = _net(n_in, self.hidden)
            prefix = f"m{m}."
            state = {
                k[len(prefix) :]: torch.from_numpy(np.array(v))
                for k, v in arrays.items()
                if k.startswith(prefix)
            }
            net.load_state_dict(state)
            net.eval()
            self.nets.append(net)
