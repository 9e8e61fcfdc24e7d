"""Transformers at tiny width (d=64, 2 layers, 4 heads): GPT-2 decoder, BERT encoder with pooler and
classifier, Llama decoder (RMSNorm, SwiGLU, rotary), ViT (patch 4 on 3x16x16)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

D, HEADS, LAYERS = 64, 4, 2


def _init_normal(model: nn.Module, std: float = 0.02, trunc: bool = False) -> None:
    """GPT-2 / BERT / Llama init: Linear and Embedding ``N(0, std^2)``, biases 0, norms weight 1."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding, nn.Conv2d)):
            (nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std) if trunc
             else nn.init.normal_(m.weight, 0.0, std))
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Attention(nn.Module):
    """Multi-head self-attention; ``rotary=True`` rotates queries and keys (Su et al. 2021)."""

    def __init__(self, causal: bool, bias: bool = True, rotary: bool = False, dropout: float = 0.0):
        super().__init__()
        self.qkv = nn.Linear(D, 3 * D, bias=bias)
        self.proj = nn.Linear(D, D, bias=bias)
        self.causal, self.rotary, self.dropout = causal, rotary, dropout

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        if self.rotary:
            q, k = rotate(q), rotate(k)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, t, D))


def rotate(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding on the last dimension (pairs (i, i + d/2)), positions along dim -2."""
    t, d = x.shape[-2], x.shape[-1]
    freq = base ** (-torch.arange(0, d // 2, dtype=x.dtype) * 2 / d)
    ang = torch.arange(t, dtype=x.dtype)[:, None] * freq[None]
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class MLP(nn.Module):
    def __init__(self, act: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.fc, self.act, self.out, self.drop = nn.Linear(D, 4 * D), act, nn.Linear(4 * D, D), nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.out(self.act(self.fc(x))))


class PreNormBlock(nn.Module):
    """``x + attn(norm(x))``, ``x + mlp(norm(x))`` (GPT-2, ViT, Llama)."""

    def __init__(self, norm, attn, mlp, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = norm(), attn, norm(), mlp
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class GPT2(nn.Module):
    """Radford et al. 2019: learned positions, pre-LN, tanh-GELU, dropout 0.1, tied embeddings,
    ``N(0, 0.02^2)`` init with residual projections scaled by ``1/sqrt(2 n_layer)``."""

    def __init__(self, vocab: int = 32, length: int = 32):
        super().__init__()
        self.wte, self.wpe, self.drop = nn.Embedding(vocab, D), nn.Embedding(length, D), nn.Dropout(0.1)
        self.blocks = nn.Sequential(*[PreNormBlock(lambda: nn.LayerNorm(D), Attention(True, dropout=0.1),
                                                   MLP(nn.GELU(approximate="tanh"), 0.1), 0.1)
                                      for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(D)
        _init_normal(self)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.out.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * LAYERS))

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        h = self.ln_f(self.blocks(self.drop(self.wte(idx) + self.wpe(pos))))
        return h @ self.wte.weight.T              # tied output embedding


class PostNormBlock(nn.Module):
    """BERT: ``norm(x + attn(x))``, ``norm(x + mlp(x))``."""

    def __init__(self):
        super().__init__()
        self.attn, self.norm1 = Attention(False, dropout=0.1), nn.LayerNorm(D, eps=1e-12)
        self.mlp, self.norm2 = MLP(nn.GELU(), 0.1), nn.LayerNorm(D, eps=1e-12)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.mlp(x))


class BERTClassifier(nn.Module):
    """Devlin et al. 2019: token + position + segment embeddings, LayerNorm, post-LN blocks with erf-GELU,
    tanh pooler on the [CLS] token, dropout, Linear classifier; ``N(0, 0.02^2)`` init."""

    def __init__(self, vocab: int = 32, length: int = 25, classes: int = 2):
        super().__init__()
        self.tok, self.pos, self.seg = nn.Embedding(vocab, D), nn.Embedding(length, D), nn.Embedding(2, D)
        self.emb_norm, self.drop = nn.LayerNorm(D, eps=1e-12), nn.Dropout(0.1)
        self.blocks = nn.Sequential(*[PostNormBlock() for _ in range(LAYERS)])
        self.pooler, self.pooler_act = nn.Linear(D, D), nn.Tanh()
        self.classifier = nn.Linear(D, classes)
        _init_normal(self)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        h = self.drop(self.emb_norm(self.tok(idx) + self.pos(pos) + self.seg(torch.zeros_like(idx))))
        h = self.blocks(h)
        return self.classifier(self.drop(self.pooler_act(self.pooler(h[:, 0]))))


class RMSNorm(nn.Module):
    """Zhang & Sennrich 2019: ``x / sqrt(mean(x^2) + eps) * g``."""

    def __init__(self, d: int = D, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class SwiGLU(nn.Module):
    """Shazeer 2020: ``down(silu(gate(x)) * up(x))``, hidden 2/3 of 4d rounded to a multiple of 16."""

    def __init__(self, hidden: int = 176):
        super().__init__()
        self.gate, self.up = nn.Linear(D, hidden, bias=False), nn.Linear(D, hidden, bias=False)
        self.act, self.down = nn.SiLU(), nn.Linear(hidden, D, bias=False)

    def forward(self, x):
        return self.down(self.act(self.gate(x)) * self.up(x))


class Llama(nn.Module):
    """Touvron et al. 2023: RMSNorm pre-norm, rotary attention without biases, SwiGLU, untied head."""

    def __init__(self, vocab: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab, D)
        self.blocks = nn.Sequential(*[PreNormBlock(RMSNorm, Attention(True, bias=False, rotary=True), SwiGLU())
                                      for _ in range(LAYERS)])
        self.norm, self.head = RMSNorm(), nn.Linear(D, vocab, bias=False)
        _init_normal(self)

    def forward(self, idx):
        return self.head(self.norm(self.blocks(self.embed(idx))))


class ViT(nn.Module):
    """Dosovitskiy et al. 2021: 4x4 patches, [CLS] token, learned positions, pre-LN, erf-GELU, head on the
    [CLS] token; truncated-normal 0.02 init (timm)."""

    def __init__(self, classes: int = 10, size: int = 16, patch: int = 4):
        super().__init__()
        n = (size // patch) ** 2
        self.patch = nn.Conv2d(3, D, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, D))
        self.blocks = nn.Sequential(*[PreNormBlock(lambda: nn.LayerNorm(D, eps=1e-6), Attention(False),
                                                   MLP(nn.GELU())) for _ in range(LAYERS)])
        self.norm, self.head = nn.LayerNorm(D, eps=1e-6), nn.Linear(D, classes)
        _init_normal(self, trunc=True)
        nn.init.trunc_normal_(self.pos, 0.0, 0.02, -0.04, 0.04)
        nn.init.trunc_normal_(self.cls, 0.0, 0.02, -0.04, 0.04)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.pos
        return self.head(self.norm(self.blocks(h))[:, 0])
