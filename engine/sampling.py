"""Flow-matching samplers for rectified flow.

Convention: z_t = (1 - t) * x0 + t * noise, the model predicts the velocity
v = dz/dt = noise - x0. Sampling integrates from t = 1 (noise) to t = 0 (data).

Every sampler has the same signature: (velocity_fn, x, ts, callback) where
velocity_fn(x, t) -> v, ts is the decreasing time grid (steps + 1 values from 1 to 0),
and callback(step, total, x) is called after every step (it may raise to cancel).
"""

from __future__ import annotations

from typing import Callable

import torch


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from 1 to 0; shift > 1 spends more steps near the noise end."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


def partial_grid(steps: int, strength: float) -> torch.Tensor:
    """The last part of the time grid for denoising from t = strength (SDEdit-style):
    max(1, round(steps * strength)) steps from `strength` to 0 (no steps at strength 0)."""
    if strength <= 0:
        return torch.zeros(1)
    n = max(1, round(steps * strength))
    return torch.linspace(float(strength), 0.0, n + 1)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: float) -> torch.Tensor:
    """A point on the flow path at time t: z_t = (1 - t) * x0 + t * noise (t = 1 is noise)."""
    return (1.0 - t) * x0 + t * noise


def initial_noise(shape, seed: int, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Noise drawn on the CPU from a seeded generator: the same seed gives the same
    result on every device."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)


@torch.no_grad()
def euler(velocity_fn: Callable, x, ts, callback: Callable | None = None):
    """Euler's method on the flow ODE: x <- x + (t_next - t) * v(x, t)."""
    total = len(ts) - 1
    for i in range(total):
        x = x + (ts[i + 1] - ts[i]) * velocity_fn(x, ts[i])
        if callback:
            callback(i + 1, total, x)
    return x


@torch.no_grad()
def heun(velocity_fn: Callable, x, ts, callback: Callable | None = None):
    """Heun's method (2nd order; Karras et al. 2022, Alg. 1 without churn); the last step
    to t = 0 is plain Euler."""
    total = len(ts) - 1
    for i in range(total):
        dt = ts[i + 1] - ts[i]
        v = velocity_fn(x, ts[i])
        x_pred = x + dt * v
        x = x_pred if ts[i + 1] == 0 else x + dt * 0.5 * (v + velocity_fn(x_pred, ts[i + 1]))
        if callback:
            callback(i + 1, total, x)
    return x


SAMPLERS = {"euler": euler, "heun": heun}


def cfg_velocity(model, cond, uncond, guidance: float) -> Callable:
    """Classifier-free guidance: v = v_u + g * (v_c - v_u); g = 1 is the conditional model.

    `model(x, t_batch, condition)`; `cond`/`uncond` are Condition objects of batch B.
    """
    from .models.dit import Condition

    both = Condition.cat(cond, uncond) if guidance != 1.0 else None

    def velocity(x, t):
        t_b = torch.full((x.shape[0],), float(t), device=x.device)
        if both is None:
            return model(x, t_b, cond)
        v_c, v_u = model(torch.cat([x, x]), torch.cat([t_b, t_b]), both).chunk(2)
        return v_u + guidance * (v_c - v_u)

    return velocity
