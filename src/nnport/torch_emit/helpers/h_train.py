"""Helpers for the ai.onnx.preview.training optimizers (Adagrad, Adam, Momentum): one update
step of every tensor the node optimizes, by the pseudo code of the ONNX spec.  Each takes the
node's lists (tensors, gradients, accumulators) and returns its outputs in the node's order."""
from typing import List

import torch

__all__ = ["_adagrad", "_adam", "_momentum"]


def _adagrad(r: torch.Tensor, t: torch.Tensor, xs: List[torch.Tensor], gs: List[torch.Tensor],
             hs: List[torch.Tensor], norm: float, decay: float,
             eps: float) -> List[torch.Tensor]:
    """[X_new...] + [H_new...]: R decays as R / (1 + T * decay_factor)."""
    rate = r / (1 + t * decay)
    new_x: List[torch.Tensor] = []
    new_h: List[torch.Tensor] = []
    for x, g, h in zip(xs, gs, hs):
        grad = norm * x + g
        h_new = h + grad * grad
        new_x.append(x - rate * grad / (torch.sqrt(h_new) + eps))
        new_h.append(h_new)
    return new_x + new_h


def _adam(r: torch.Tensor, t: torch.Tensor, xs: List[torch.Tensor], gs: List[torch.Tensor],
          vs: List[torch.Tensor], hs: List[torch.Tensor], alpha: float, beta: float,
          norm: float, norm_post: float, eps: float) -> List[torch.Tensor]:
    """[X_new...] + [V_new...] + [H_new...], with the bias-corrected rate for T > 0."""
    tf = t.to(torch.float64)
    corrected = r * torch.sqrt(1 - beta ** tf) / (1 - alpha ** tf)
    rate = torch.where(t > 0, corrected.to(r.dtype), r)
    new_x: List[torch.Tensor] = []
    new_v: List[torch.Tensor] = []
    new_h: List[torch.Tensor] = []
    for x, g, v, h in zip(xs, gs, vs, hs):
        grad = norm * x + g
        v_new = alpha * v + (1 - alpha) * grad
        h_new = beta * h + (1 - beta) * grad * grad
        x_new = x - rate * v_new / (torch.sqrt(h_new) + eps)
        new_x.append((1 - norm_post) * x_new)
        new_v.append(v_new)
        new_h.append(h_new)
    return new_x + new_v + new_h


def _momentum(r: torch.Tensor, t: torch.Tensor, xs: List[torch.Tensor], gs: List[torch.Tensor],
              vs: List[torch.Tensor], alpha: float, beta: float, norm: float,
              nesterov: bool) -> List[torch.Tensor]:
    """[X_new...] + [V_new...]; the gradient's weight is 1 on the first step (T == 0)."""
    beta_t = torch.where(t > 0, torch.full_like(r, beta), torch.ones_like(r))
    new_x: List[torch.Tensor] = []
    new_v: List[torch.Tensor] = []
    for x, g, v in zip(xs, gs, vs):
        grad = norm * x + g
        v_new = alpha * v + beta_t * grad
        step = grad + alpha * v_new if nesterov else v_new
        new_x.append(x - r * step)
        new_v.append(v_new)
    return new_x + new_v
