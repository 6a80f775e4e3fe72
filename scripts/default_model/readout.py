"""The adapter's read-outs: encoder states of one clip -> the shift added to the input
embedding of <|startoftranscript|> (the soft prompt the frozen decoder answers from).

Two designs, both zero-initialised so that training starts from Whisper's own answer:

* ``pooled``: mean+std over frames of fixed encoder layers (cached by encode_states.py),
  standardised on the training set, one linear map. The session-2 design (layer 3).
* ``asp``: every encoder layer (embedding output + 6 layers), each standardised per
  channel on the training frames, mixed by learned softmax weights (the SUPERB probe's
  weighted sum), attentive statistics pooling over frames (Okabe et al. 2018: a scalar
  attention score per frame from a tanh layer; weighted mean and std), then a linear map
  or a small MLP. Why: the emotion is spread over the middle of the stack, and the
  frames that carry it (stressed syllables, laughter) are not all the frames. The pooled
  statistics are batch-normalised (no affine) before the head; the running statistics
  are folded into the head at export.

Each read-out exports the tensors and the adapter.json ``readout`` block that emomon's
Rust side (models/src/emotion_adapter.rs) evaluates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class PooledLinear(torch.nn.Module):
    """Standardised pooled statistics of `layers` -> one linear map."""

    kind = "pooled"

    def __init__(self, layers: list[int], mu: torch.Tensor, sd: torch.Tensor, d: int):
        super().__init__()
        self.layers = layers
        self.register_buffer("mu", mu)
        self.register_buffer("sd", sd)
        self.lin = torch.nn.Linear(mu.shape[0], d)
        torch.nn.init.zeros_(self.lin.weight)
        torch.nn.init.zeros_(self.lin.bias)

    def forward(self, inputs: dict) -> torch.Tensor:
        return self.lin((inputs["pooled"] - self.mu) / self.sd)

    def export(self) -> tuple[dict, dict]:
        # W((p - mu) / sd) + b = (W / sd) p + (b - (W / sd) mu): emomon reads raw pooled stats.
        w = self.lin.weight.detach() / self.sd[None, :]
        b = self.lin.bias.detach() - w @ self.mu
        return ({"cond.weight": w.contiguous(), "cond.bias": b.contiguous()},
                {"cond_layers": self.layers,
                 "pooling": "mean and unbiased std over encoder frames, per layer, concatenated [mean_l, std_l, ...]"})


class LayerASP(torch.nn.Module):
    """Softmax-weighted encoder layers -> attentive statistics pooling -> linear or MLP."""

    kind = "asp"

    def __init__(self, mu: torch.Tensor, sd: torch.Tensor, d: int, att_hidden: int = 128, mlp_hidden: int = 0):
        super().__init__()
        n_layers, width = mu.shape
        self.register_buffer("mu", mu)  # [L, d] per-layer channel means of the training frames
        self.register_buffer("sd", sd)
        self.mix = torch.nn.Parameter(torch.zeros(n_layers))
        self.att = torch.nn.Linear(width, att_hidden)
        self.att_v = torch.nn.Parameter(torch.randn(att_hidden) / att_hidden ** 0.5)
        # The pooled statistics vary little between clips compared with their offsets, so
        # they are standardised over the batch (running statistics at inference; folded
        # into the head's first linear map at export), as the pooled read-out's are.
        self.bn = torch.nn.BatchNorm1d(2 * width, affine=False)
        self.mlp_hidden = mlp_hidden
        if mlp_hidden:
            self.hidden = torch.nn.Linear(2 * width, mlp_hidden)
            self.out = torch.nn.Linear(mlp_hidden, d)
        else:
            self.out = torch.nn.Linear(2 * width, d)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def mixed(self, layers: torch.Tensor) -> torch.Tensor:
        """[B, L, T, d] -> sum_l w_l (x_l - mu_l) / sd_l, [B, T, d]."""
        w = torch.softmax(self.mix, 0)
        coef = w[:, None] / self.sd  # [L, d]
        return torch.einsum("bltd,ld->btd", layers, coef) - (coef * self.mu).sum(0)

    def forward(self, inputs: dict) -> torch.Tensor:
        h = self.mixed(inputs["layers"])
        mask = inputs["frames"]  # [B, T] bool
        e = torch.tanh(self.att(h)) @ self.att_v
        a = torch.softmax(e.masked_fill(~mask, float("-inf")), 1)[..., None]  # [B, T, 1]
        mean = (a * h).sum(1)
        std = ((a * h * h).sum(1) - mean * mean).clamp(min=1e-6).sqrt()
        z = torch.cat([mean, std], 1)
        # a batch of one (the last of an epoch, at worst) uses the running statistics
        z = F.batch_norm(z, self.bn.running_mean, self.bn.running_var, training=self.training and len(z) > 1,
                         momentum=self.bn.momentum, eps=self.bn.eps)
        if self.mlp_hidden:
            z = F.gelu(self.hidden(z))
        return self.out(z)

    def first_linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's first linear map with the batch-norm folded in:
        W((z - m) / s) + b = (W / s) z + (b - (W / s) m)."""
        lin = self.hidden if self.mlp_hidden else self.out
        s = (self.bn.running_var + self.bn.eps).sqrt()
        w = lin.weight.detach() / s[None, :]
        return w, lin.bias.detach() - w @ self.bn.running_mean

    def export(self) -> tuple[dict, dict]:
        t = {"mix.weight": torch.softmax(self.mix.detach(), 0), "norm.mean": self.mu, "norm.std": self.sd,
             "att.weight": self.att.weight.detach(), "att.bias": self.att.bias.detach(), "att.v": self.att_v.detach()}
        w, b = self.first_linear()
        if self.mlp_hidden:
            t |= {"hidden.weight": w, "hidden.bias": b,
                  "out.weight": self.out.weight.detach(), "out.bias": self.out.bias.detach()}
        else:
            t |= {"out.weight": w, "out.bias": b}
        return ({k: v.float().contiguous() for k, v in t.items()},
                {"cond_layers": list(range(self.mu.shape[0])),
                 "readout": {"kind": "asp", "layers": self.mu.shape[0], "att_hidden": self.att.out_features,
                             "mlp_hidden": self.mlp_hidden,
                             "math": "x_l = (h_l - norm.mean[l]) / norm.std[l] per frame; h = sum_l mix.weight[l] x_l; "
                                     "e_t = att.v . tanh(att.weight h_t + att.bias); a = softmax_t(e); "
                                     "mean = sum_t a_t h_t; std = sqrt(max(sum_t a_t h_t^2 - mean^2, 1e-6)); "
                                     "z = [mean, std]; (mlp: z = gelu(hidden z)); shift = out z (the training's batch "
                                     "standardisation of z is folded into the first of hidden / out)"}})
