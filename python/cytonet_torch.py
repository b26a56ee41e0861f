"""The CytoNet networks and losses in plain PyTorch, equal to `train/` in C++.

Weights exported by `cytonet train` (a dict of tensors written with torch::pickle_save)
load into these modules with `torch.load` and `load_state_dict`:

    import torch
    from cytonet_torch import CytoNetResNet, ResNetConfig
    model = CytoNetResNet(ResNetConfig.resnet50())        # or ResNetConfig.small()
    state = torch.load("weights.pt")                    # backbone.* and head.* entries
    model.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    features = model.features(patches_as_float)         # [B, 2048], before the projection head

The tests build these beside the C++ modules and compare them parameter for parameter and
output for output; the losses here are the reference the C++ ones are tested against.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ResNetConfig:
    input_channels: int = 1
    stem_channels: int = 64
    stage_widths: list = field(default_factory=lambda: [64, 128, 256, 512])
    stage_blocks: list = field(default_factory=lambda: [3, 4, 6, 3])

    @staticmethod
    def resnet50():
        return ResNetConfig()

    @staticmethod
    def small():
        return ResNetConfig(1, 16, [16, 32, 64, 128], [1, 1, 1, 1])


class Bottleneck(nn.Module):
    def __init__(self, in_channels, width, stride):
        super().__init__()
        out_channels = 4 * width
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class CytoNetResNet(nn.Module):
    """ResNet with the CytoNet stem: conv 5×5/4 → BN → ReLU → conv 3×3 → BN → ReLU → 2×2 pool."""

    def __init__(self, config=None):
        super().__init__()
        config = config or ResNetConfig.resnet50()
        s = config.stem_channels
        self.stem = nn.Sequential(nn.Conv2d(config.input_channels, s, 5, stride=4, padding=2, bias=False),
                                  nn.BatchNorm2d(s), nn.ReLU(), nn.Conv2d(s, s, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(s), nn.ReLU(), nn.MaxPool2d(2, 2))
        channels = s
        for i, (width, blocks) in enumerate(zip(config.stage_widths, config.stage_blocks)):
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(channels, width, 2 if i > 0 and b == 0 else 1))
                channels = 4 * width
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.stages = len(config.stage_widths)

    def forward(self, x):
        y = self.stem(x)
        for i in range(self.stages):
            y = getattr(self, f"layer{i + 1}")(y)
        return y

    def features(self, x):
        return self.forward(x).mean(dim=(2, 3))


@dataclass
class VitConfig:
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072

    @staticmethod
    def base():
        return VitConfig()

    @staticmethod
    def small():
        return VitConfig(64, 2, 4, 128)


class VitBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = nn.MultiheadAttention(config.dim, config.heads, batch_first=True)
        self.norm2 = nn.LayerNorm(config.dim)
        self.fc1 = nn.Linear(config.dim, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.dim)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VitEncoder(nn.Module):
    """Pre-norm ViT on a map's positions, with a class token and learned position embeddings."""

    def __init__(self, config, in_channels, tokens):
        super().__init__()
        self.embed = nn.Linear(in_channels, config.dim)
        self.class_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.position_embedding = nn.Parameter(torch.zeros(1, tokens + 1, config.dim))
        self.blocks = nn.ModuleList([VitBlock(config) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, feature_map):
        x = self.embed(feature_map.flatten(2).transpose(1, 2))
        x = torch.cat([self.class_token.expand(x.shape[0], 1, x.shape[2]), x], dim=1) + self.position_embedding
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


class HybridBackbone(nn.Module):
    """R50 + ViT: the ViT's class token on the CytoNet ResNet's last map."""

    def __init__(self, resnet_config, vit_config, patch_size):
        super().__init__()
        side = patch_size // 64
        self.resnet = CytoNetResNet(resnet_config)
        self.vit = VitEncoder(vit_config, 4 * resnet_config.stage_widths[-1], side * side)

    def features(self, x):
        return self.vit(self.resnet(x))


class ProjectionHead(nn.Module):
    def __init__(self, in_features, out_features=256):
        super().__init__()
        self.fc1 = nn.Linear(in_features, in_features, bias=False)
        self.bn = nn.BatchNorm1d(in_features)
        self.fc2 = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def spatial_nce_loss(features, positions_mm, temperature=0.07, sigma_mm=10.0):
    """Paper eq. 1–2, written as the paper states it (raw Gaussian weights, normalised)."""
    z = F.normalize(features, dim=1)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1).masked_fill(eye, 0.0)
    distance2 = ((positions_mm[:, None, :] - positions_mm[None, :, :]) ** 2).sum(-1)
    weights = torch.exp(-distance2 / (2 * sigma_mm ** 2)).masked_fill(eye, 0.0)
    weights = weights / weights.sum(1, keepdim=True)
    return (-(weights * log_prob).sum(1)).mean()


def nt_xent_loss(features, temperature=0.1):
    """SimCLR: rows i and i + n are two views of one point."""
    z = F.normalize(features, dim=1)
    n2 = z.shape[0]
    eye = torch.eye(n2, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    targets = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return F.cross_entropy(logits, targets)


def supervised_contrastive_loss(features, labels, temperature=0.1):
    """Khosla et al. 2020, L_out; anchors without another sample of their label are left out."""
    z = F.normalize(features, dim=1)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1).masked_fill(eye, 0.0)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    count = positives.sum(1)
    per_anchor = -(log_prob * positives).sum(1) / count.clamp(min=1)
    keep = count > 0
    return per_anchor[keep].mean()


def split_for_weight_decay(module):
    """(decayed, other): convolution and linear weights, then biases, normalisation
    parameters and a ViT's class token and position embeddings — train/lars.h's split."""
    decayed, other = [], []
    for name, p in module.named_parameters():
        no_decay = p.dim() <= 1 or name.endswith("class_token") or name.endswith("position_embedding")
        (other if no_decay else decayed).append(p)
    return decayed, other


class Lars(torch.optim.Optimizer):
    """SGD with Nesterov momentum inside LARS with clipping (apex's LARC), as train/lars.h:

        a = η‖p‖ / (‖g‖ + λ‖p‖ + ε);  s = min(a / lr, 1);  g ← s·(g + λp)  where ‖p‖, ‖g‖ > 0
        buf ← μ·buf + g (g on the first step);  p ← p − lr·(g + μ·buf)

    Weight decay and adaptation apply to the first group; the second is adapted only with
    adapt_bias_and_norm."""

    def __init__(self, decayed, other, lr, momentum=0.9, weight_decay=1e-4, trust_coefficient=0.02, eps=1e-8,
                 clip=True, adapt_bias_and_norm=False):
        groups = [{"params": decayed, "weight_decay": weight_decay, "adapt": True},
                  {"params": other, "weight_decay": 0.0, "adapt": adapt_bias_and_norm}]
        super().__init__([g for g in groups if g["params"]],
                         {"lr": lr, "momentum": momentum, "trust_coefficient": trust_coefficient, "eps": eps,
                          "clip": clip})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, decay, mu = group["lr"], group["weight_decay"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["adapt"]:
                    p_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    adapted = (p_norm > 0) & (g_norm > 0)
                    trust = group["trust_coefficient"] * p_norm / (g_norm + decay * p_norm + group["eps"])
                    if group["clip"]:
                        trust = (trust / lr).clamp(max=1.0)
                    scale = torch.where(adapted, trust, torch.ones_like(trust))
                    g = (g + p * (adapted.to(p.dtype) * decay)).mul(scale) if decay > 0 else g.mul(scale)
                if mu > 0:
                    state = self.state[p]
                    if "momentum" not in state:
                        state["momentum"] = g.clone()
                    else:
                        state["momentum"].mul_(mu).add_(g)
                    g = g.add(state["momentum"], alpha=mu)
                p.add_(g, alpha=-lr)


def learning_rate(step, base, batch_size, warmup_steps=0, total_steps=0):
    """train/lars.h's LearningRateSchedule: base × B/256, linear warm-up, then constant or
    a cosine decay to 0 at total_steps."""
    import math

    peak = base * batch_size / 256
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if total_steps <= 0:
        return peak
    progress = min(max((step - warmup_steps) / max(1, total_steps - warmup_steps), 0.0), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))
