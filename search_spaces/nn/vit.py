"""The weight-entangled vision-transformer supernet (``register_space(..., nn=...)`` of ``vit``).

Every weight is stored at its largest size and a subnet uses the leading slice: the first
``embed`` channels of the residual stream (patch embedding, class token, position embedding,
every LayerNorm, the readers and writers of the stream, the classifier), the first ``heads``
heads of each of q, k and v (and the matching input columns of the projection), the first
``mlp_ratio * embed`` hidden units of the MLP. The position embedding is stored for the largest
token grid and bilinearly interpolated to a smaller one. At the largest arch no weight is
sliced, so the supernet computes exactly what the static network does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import Arch
from search_spaces.nn.base import Supernet
from search_spaces.nn.vit_static import (
    Block,
    StaticViT,
    build_static_vit,
    init_linear_,
    make_stem,
)
from search_spaces.nn.vit_static import covering_archs as vit_covering_archs
from search_spaces.nn.vit_static import latency_units as vit_latency_units
from search_spaces.vit import ViTSpace


def _lead(t: torch.Tensor, n: int, dim: int = 0) -> torch.Tensor:
    """The first ``n`` entries of ``t`` along ``dim`` (``t`` itself when that is all of it)."""
    return t if t.shape[dim] == n else t.narrow(dim, 0, n)


def _linear_params(rows: int, cols: int) -> tuple[nn.Parameter, nn.Parameter]:
    w = nn.Parameter(torch.empty(rows, cols))
    b = nn.Parameter(torch.zeros(rows))
    init_linear_(w, b)
    return w, b


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first ``x.shape[-1]`` features (a LayerNorm subclass)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = x.shape[-1]
        if e == self.normalized_shape[0]:
            return super().forward(x)
        return F.layer_norm(x, (e,), self.weight[:e], self.bias[:e], self.eps)


class ElasticBlock(nn.Module):
    """A transformer block at its largest size; ``heads`` and ``hidden`` are set per arch, the
    embedding width is the input's."""

    def __init__(self, embed_max: int, heads_max: int, head_dim: int, hidden_max: int):
        super().__init__()
        self.embed_max, self.heads_max, self.head_dim = embed_max, heads_max, head_dim
        self.hidden_max = hidden_max
        self.scale = head_dim**-0.5
        self.norm1 = ElasticLayerNorm(embed_max)
        self.qkv_weight, self.qkv_bias = _linear_params(3 * heads_max * head_dim, embed_max)
        self.proj_weight, self.proj_bias = _linear_params(embed_max, heads_max * head_dim)
        self.norm2 = ElasticLayerNorm(embed_max)
        self.fc1_weight, self.fc1_bias = _linear_params(hidden_max, embed_max)
        self.fc2_weight, self.fc2_bias = _linear_params(embed_max, hidden_max)
        self.heads, self.hidden = heads_max, hidden_max

    def qkv(self, embed: int, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """qkv weight and bias of ``heads`` heads reading ``embed`` channels: rows
        [q heads | k heads | v heads], as the static ``Attention`` lays them out."""
        w: torch.Tensor = self.qkv_weight
        b: torch.Tensor = self.qkv_bias
        if heads == self.heads_max:
            return _lead(w, embed, 1), b
        qd, full = heads * self.head_dim, self.heads_max * self.head_dim
        w = w.view(3, full, self.embed_max)[:, :qd, :embed].reshape(3 * qd, embed)
        return w, b.view(3, full)[:, :qd].reshape(3 * qd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        h, d, hid = self.heads, self.head_dim, self.hidden
        qw, qb = self.qkv(e, h)
        qkv = F.linear(self.norm1(x), qw, qb).reshape(b, t, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.matmul(q * self.scale, k.transpose(-2, -1)).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, h * d)
        pw = _lead(_lead(self.proj_weight, e), h * d, 1)
        x = x + F.linear(out, pw, _lead(self.proj_bias, e))
        y = F.linear(
            self.norm2(x), _lead(_lead(self.fc1_weight, hid), e, 1), _lead(self.fc1_bias, hid)
        )
        w2 = _lead(_lead(self.fc2_weight, e), hid, 1)
        out2: torch.Tensor = x + F.linear(F.gelu(y), w2, _lead(self.fc2_bias, e))
        return out2

    @torch.no_grad()
    def copy_into(self, block: Block, embed: int) -> None:
        """Fill a static block (its heads and hidden units) with the leading slices."""
        attn, e = block.attn, embed
        h, hid, qd = attn.heads, block.fc1.out_features, attn.heads * self.head_dim
        for dst, src in ((block.norm1, self.norm1), (block.norm2, self.norm2)):
            dst.weight.copy_(src.weight[:e])
            dst.bias.copy_(src.bias[:e])
        qw, qb = self.qkv(e, h)
        attn.qkv.weight.copy_(qw)
        attn.qkv.bias.copy_(qb)
        attn.proj.weight.copy_(self.proj_weight[:e, :qd])
        attn.proj.bias.copy_(self.proj_bias[:e])
        block.fc1.weight.copy_(self.fc1_weight[:hid, :e])
        block.fc1.bias.copy_(self.fc1_bias[:hid])
        block.fc2.weight.copy_(self.fc2_weight[:e, :hid])
        block.fc2.bias.copy_(self.fc2_bias[:e])

    @torch.no_grad()
    def reorder(self) -> None:
        """Sort heads by the L1 norm of their projection columns and MLP hidden units by the
        L1 norm of their fc2 columns (most important first). Exact for the full block:
        attention is equivariant to a permutation of its heads, the MLP to one of its units."""
        hm, d, em = self.heads_max, self.head_dim, self.embed_max
        per_head = self.proj_weight.view(em, hm, d).abs().sum((0, 2))
        perm = torch.argsort(per_head, descending=True)
        w = self.qkv_weight.view(3, hm, d, em)
        w.copy_(w.index_select(1, perm))
        bias = self.qkv_bias.view(3, hm, d)
        bias.copy_(bias.index_select(1, perm))
        p = self.proj_weight.view(em, hm, d)
        p.copy_(p.index_select(1, perm))
        perm = torch.argsort(self.fc2_weight.abs().sum(0), descending=True)
        self.fc1_weight.copy_(self.fc1_weight[perm])
        self.fc1_bias.copy_(self.fc1_bias[perm])
        self.fc2_weight.copy_(self.fc2_weight[:, perm])

    @torch.no_grad()
    def permute_embed(self, perm: torch.Tensor) -> None:
        """Permute the residual-stream channels this block reads and writes."""
        for ln in (self.norm1, self.norm2):
            ln.weight.copy_(ln.weight[perm])
            ln.bias.copy_(ln.bias[perm])
        self.qkv_weight.copy_(self.qkv_weight[:, perm])
        self.fc1_weight.copy_(self.fc1_weight[:, perm])
        for t in (self.proj_weight, self.proj_bias, self.fc2_weight, self.fc2_bias):
            t.copy_(t[perm])

    def embed_importance(self) -> torch.Tensor:
        """L1 norm of the weights that read each stream channel."""
        return self.qkv_weight.abs().sum(0) + self.fc1_weight.abs().sum(0)


class ViTSupernet(Supernet):
    space: ViTSpace

    def __init__(self, space: ViTSpace):
        super().__init__(space)
        em, p = max(space.embed_dims), space.patch_size
        self.embed_max = em
        self.stem = make_stem(space)
        # Initialised as nn.Conv2d initialises itself, as the static patch embedding is.
        self.patch_weight = nn.Parameter(torch.empty(em, space.patch_in, p, p))
        self.patch_bias = nn.Parameter(torch.empty(em))
        nn.init.kaiming_uniform_(self.patch_weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(space.patch_in * p * p)
        nn.init.uniform_(self.patch_bias, -bound, bound)
        self.cls_token: nn.Parameter | None
        if space.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, em))
        else:
            self.register_parameter("cls_token", None)
        self.pos_embed = nn.Parameter(torch.zeros(1, space.tokens(max(space.resolutions)), em))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        hidden_max = max(space.mlp_ratios) * em
        self.blocks = nn.ModuleList(
            [
                ElasticBlock(em, max(space.heads), space.head_dim, hidden_max)
                for _ in range(space.max_depth)
            ]
        )
        self.norm = ElasticLayerNorm(em)
        self.head_weight, self.head_bias = _linear_params(space.num_classes, em)
        self._blocks: list[ElasticBlock] = []
        self._resolution = self._embed = self._grid = 0
        self.set_active(space.max_arch())

    def _apply_arch(self, arch: Arch) -> None:
        active = []
        for j, cfg in enumerate(self.space.layers(arch)):
            block = self.blocks[j]
            assert isinstance(block, ElasticBlock)
            block.heads, block.hidden = cfg.heads, cfg.hidden
            active.append(block)
        self._blocks = active
        self._resolution, self._embed = arch["resolution"], arch["embed"]
        self._grid = self.space.grid(arch["resolution"])

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Resize a (N, C, H, W) batch to the active resolution (bilinear); identity if equal."""
        r = self._resolution
        if x.dim() != 4 or x.shape[1] != self.space.in_channels:
            raise ValueError(
                f"vit supernet expects input of shape (N, {self.space.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if x.shape[2] == r and x.shape[3] == r:
            return x
        return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)

    def position(self, grid: int, embed: int) -> torch.Tensor:
        """The (1, T, embed) position embedding for a ``grid`` x ``grid`` token grid: the
        stored table's first channels, the grid part bilinearly resized when smaller."""
        pos = _lead(self.pos_embed, embed, 2)
        gmax = self.space.max_grid
        if grid == gmax:
            return pos
        c = int(self.space.cls_token)
        table = pos[:, c:].reshape(1, gmax, gmax, embed).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid, grid), mode="bilinear", align_corners=False)
        table = table.permute(0, 2, 3, 1).reshape(1, grid * grid, embed)
        return torch.cat([pos[:, :c], table], dim=1) if c else table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e, p = self._embed, self.space.patch_size
        x = self.stem(x)
        x = F.conv2d(x, _lead(self.patch_weight, e), _lead(self.patch_bias, e), stride=p)
        x = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([_lead(self.cls_token, e, 2).expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.position(self._grid, e)
        for block in self._blocks:
            x = block(x)
        x = self.norm(x)
        x = x.mean(dim=1) if self.space.pool == "mean" else x[:, 0]
        x = F.dropout(x, self.space.dropout, self.training)
        out: torch.Tensor = F.linear(x, _lead(self.head_weight, e, 1), self.head_bias)
        return out

    @torch.no_grad()
    def extract(self, arch: Mapping[str, int]) -> StaticViT:
        a = self.space.canonical(arch)
        e = a["embed"]
        static = build_static_vit(self.space, a)
        emb = static.embed
        emb.stem.load_state_dict(self.stem.state_dict())
        emb.patch.weight.copy_(self.patch_weight[:e])
        assert emb.patch.bias is not None
        emb.patch.bias.copy_(self.patch_bias[:e])
        if emb.cls_token is not None and self.cls_token is not None:
            emb.cls_token.copy_(self.cls_token[:, :, :e])
        emb.pos_embed.copy_(self.position(self.space.grid(a["resolution"]), e))
        for j, dst in enumerate(static.blocks):
            src = self.blocks[j]
            assert isinstance(src, ElasticBlock) and isinstance(dst, Block)
            src.copy_into(dst, e)
        static.tail.norm.weight.copy_(self.norm.weight[:e])
        static.tail.norm.bias.copy_(self.norm.bias[:e])
        static.tail.head.weight.copy_(self.head_weight[:, :e])
        static.tail.head.bias.copy_(self.head_bias)
        static.train(self.training)
        return static

    @torch.no_grad()
    def reorder_channels(self) -> None:
        """Sort heads and MLP units per block, then the embedding channels of the residual
        stream by the L1 norm of every weight that reads them (blocks and classifier).

        Exact for every arch at the largest embedding width and, per block, at all heads and
        the largest MLP: LayerNorm, attention and the MLP commute with a permutation of the
        stream channels applied to every weight at once, and with one of the heads / hidden
        units inside a block. Smaller archs then take the most important slices."""
        blocks = [b for b in self.blocks if isinstance(b, ElasticBlock)]
        for block in blocks:
            block.reorder()
        importance = self.head_weight.abs().sum(0)
        for block in blocks:
            importance = importance + block.embed_importance()
        perm = torch.argsort(importance, descending=True)
        for block in blocks:
            block.permute_embed(perm)
        for t in (self.patch_weight, self.patch_bias):
            t.copy_(t[perm])
        for table in (self.pos_embed, self.cls_token):
            if table is not None:
                table.copy_(table[:, :, perm])
        self.norm.weight.copy_(self.norm.weight[perm])
        self.norm.bias.copy_(self.norm.bias[perm])
        self.head_weight.copy_(self.head_weight[:, perm])


# ----- the registry's hooks (``register_space(..., nn="search_spaces.nn.vit")``) -------------
def build_supernet(space: ViTSpace) -> ViTSupernet:
    return ViTSupernet(space)


build_static = build_static_vit
latency_units = vit_latency_units
covering_archs = vit_covering_archs
