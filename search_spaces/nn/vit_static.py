"""Static vision-transformer subnets built from plain torch layers, and their latency units.

``build_static_vit(space, arch)`` needs only the space spec and the arch JSON, so exported
weights load without the supernet; ``ViTSupernet.extract`` fills the same tree. The modules use
only traceable tensor ops (TorchScript tracing, ONNX with a dynamic batch axis). The two
attention products are :class:`MatMul` modules, which ``count_macs`` counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

import torch
from torch import nn

from search_spaces.nn.base import Unit
from search_spaces.vit import LayerCfg, ViTSpace


def init_linear_(weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """The ViT initialisation of a linear layer (truncated normal, std 0.02; zero bias), used
    by the supernet and the static network alike."""
    nn.init.trunc_normal_(weight, std=0.02)
    if bias is not None:
        nn.init.zeros_(bias)


def make_stem(space: ViTSpace) -> nn.Module:
    """The optional convolutional stem (conv 3x3 with bias + GELU), else an identity."""
    if not space.stem_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(space.in_channels, space.stem_channels, 3, space.stem_stride, 1), nn.GELU()
    )


class MatMul(nn.Module):
    """``a @ b`` as a module, so that MAC counting (``macs``) sees the product."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)

    def macs(self, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
        return int(output.numel()) * int(inputs[0].shape[-1])


class Attention(nn.Module):
    """Multi-head self-attention: qkv rows are [q heads | k heads | v heads], each head
    ``head_dim`` wide; softmax(q k^T / sqrt(head_dim)) v, then the output projection."""

    def __init__(self, embed: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(embed, 3 * heads * head_dim)
        self.qk = MatMul()
        self.av = MatMul()
        self.proj = nn.Linear(heads * head_dim, embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[0], x.shape[1]
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.qk(q * self.scale, k.transpose(-2, -1)).softmax(dim=-1)
        out = self.av(attn, v).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        y: torch.Tensor = self.proj(out)
        return y


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) (fc1, GELU, fc2)."""

    def __init__(self, cfg: LayerCfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed)
        self.attn = Attention(cfg.embed, cfg.heads, cfg.head_dim)
        self.norm2 = nn.LayerNorm(cfg.embed)
        self.fc1 = nn.Linear(cfg.embed, cfg.hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.hidden, cfg.embed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out: torch.Tensor = x + self.fc2(self.act(self.fc1(self.norm2(x))))
        return out


class Embed(nn.Module):
    """[Conv stem + GELU], patch embedding, [class token], position embedding: images to
    tokens (N, T, E)."""

    def __init__(self, space: ViTSpace, resolution: int, embed: int):
        super().__init__()
        self.stem = make_stem(space)
        p = space.patch_size
        self.patch = nn.Conv2d(space.patch_in, embed, p, p)
        self.cls_token: nn.Parameter | None
        if space.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed))
        else:
            self.register_parameter("cls_token", None)
        self.pos_embed = nn.Parameter(torch.zeros(1, space.tokens(resolution), embed))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(self.stem(x)).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        out: torch.Tensor = x + self.pos_embed
        return out


class Tail(nn.Module):
    """Final LayerNorm, pooling (class token or mean of the tokens), dropout, classifier."""

    def __init__(self, space: ViTSpace, embed: int):
        super().__init__()
        self.norm = nn.LayerNorm(embed)
        self.mean_pool = space.pool == "mean"
        self.dropout = nn.Dropout(space.dropout)
        self.head = nn.Linear(embed, space.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = x.mean(dim=1) if self.mean_pool else x[:, 0]
        out: torch.Tensor = self.head(self.dropout(x))
        return out


class StaticViT(nn.Module):
    def __init__(self, space: ViTSpace, arch: Mapping[str, int]):
        super().__init__()
        a = space.canonical(arch)
        self.embed = Embed(space, a["resolution"], a["embed"])
        self.blocks = nn.Sequential(*[Block(c) for c in space.layers(a)])
        self.tail = Tail(space, a["embed"])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear_(m.weight, m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.tail(self.blocks(self.embed(x)))
        return out


def build_static_vit(space: ViTSpace, arch: Mapping[str, int]) -> StaticViT:
    return StaticViT(space, arch)


# ----- latency lookup-table units ------------------------------------------------------------
def latency_units(space: ViTSpace, arch: Mapping[str, int]) -> list[Unit]:
    """The embedding (stem, patch, class token, position), one unit per transformer block
    (tokens, width, heads, MLP hidden) and the tail (norm, pool, classifier)."""
    a = space.canonical(arch)
    r, e = a["resolution"], a["embed"]
    t = space.tokens(r)
    units = [
        Unit(
            f"vit_embed|in={space.in_channels}x{r}x{r}|stem={space.stem_channels}"
            f"/{space.stem_stride}|patch={space.patch_size}|out={t}x{e}",
            (space.in_channels, r, r),
            partial(Embed, space, r, e),
        )
    ]
    for c in space.layers(a):
        units.append(
            Unit(
                f"vit_block|in={c.tokens}x{c.embed}|heads={c.heads}x{c.head_dim}|hidden={c.hidden}",
                (c.tokens, c.embed),
                partial(Block, c),
            )
        )
    units.append(
        Unit(
            f"vit_tail|in={t}x{e}|pool={space.pool}|out={space.num_classes}",
            (t, e),
            partial(Tail, space, e),
        )
    )
    return units


def covering_archs(space: ViTSpace) -> Iterator[dict[str, int]]:
    """Every (heads, MLP ratio) block at every (resolution, embedding width)."""
    big = space.max_arch()
    for r in space.resolutions:
        for e in space.embed_dims:
            for h in space.heads:
                for m in space.mlp_ratios:
                    a = dict(big, resolution=r, embed=e)
                    for d in space.dims:
                        if d.name.endswith(".heads"):
                            a[d.name] = h
                        elif d.name.endswith(".mlp_ratio"):
                            a[d.name] = m
                    yield space.canonical(a)
