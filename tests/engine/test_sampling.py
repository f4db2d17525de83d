import torch

from engine.config import tiny
from engine.models import Condition, build_model
from engine.sampling import cfg_velocity, euler, heun, initial_noise, time_grid


def test_euler_integrates_a_straight_flow_exactly():
    """Rectified flow toward one point x0: v = (x - x0) / t. Euler is exact on straight paths."""
    x0 = torch.tensor([1.5, -2.0, 0.25])
    noise = torch.tensor([0.3, 0.9, -1.1])
    out = euler(lambda x, t: (x - x0) / t, noise.clone(), time_grid(7).tolist())
    assert torch.allclose(out, x0, atol=1e-5)


def test_euler_constant_velocity_and_callback():
    seen = []
    out = euler(lambda x, t: torch.full_like(x, 2.0), torch.zeros(4), time_grid(5).tolist(),
                lambda i, n, x: seen.append((i, n)))
    assert torch.allclose(out, torch.full((4,), -2.0))
    assert seen == [(i, 5) for i in range(1, 6)]


def test_heun_is_exact_on_linear_time_velocity():
    # dx/dt = t  ->  x(0) = x(1) - 1/2 ; Heun's trapezoid rule is exact for linear v(t)
    out = heun(lambda x, t: torch.full_like(x, float(t)), torch.zeros(2), time_grid(4).tolist())
    # the final step is Euler (t_next = 0): error only from that step
    assert torch.allclose(out, torch.full((2,), -0.5), atol=0.2 / 4)


def test_time_grid_shift_keeps_endpoints():
    g = time_grid(10, shift=3.0)
    assert g[0] == 1 and g[-1] == 0 and (g[1:] < g[:-1]).all()


def test_noise_is_seeded_and_device_independent():
    a, b = initial_noise((2, 3), 7), initial_noise((2, 3), 7)
    assert torch.equal(a, b) and not torch.equal(a, initial_noise((2, 3), 8))


def _dit():
    torch.manual_seed(0)
    cfg = tiny()
    m = build_model(cfg).dit.eval()
    torch.nn.init.normal_(m.final.linear.weight, std=0.1)
    x = torch.randn(1, 3, cfg.vae.latent_channels, cfg.vae.latent_size, cfg.vae.latent_size)
    cond = Condition(torch.randn(1, 5, 384), torch.ones(1, 5, dtype=torch.bool), torch.randn(1, 384))
    return m, x, cond


@torch.no_grad()
def test_cfg_with_guidance_one_equals_conditional():
    m, x, cond = _dit()
    t = torch.full((1,), 0.4)
    expected = m(x, t, cond)
    assert torch.allclose(cfg_velocity(m, cond, m.null_condition(1), 1.0)(x, 0.4), expected,
                          atol=1e-6)


@torch.no_grad()
def test_cfg_extrapolates_from_unconditional():
    m, x, cond = _dit()
    t = torch.full((1,), 0.4)
    v_c, v_u = m(x, t, cond), m(x, t, m.null_condition(1))
    got = cfg_velocity(m, cond, m.null_condition(1), 3.0)(x, 0.4)
    assert torch.allclose(got, v_u + 3.0 * (v_c - v_u), atol=1e-4)
    assert not torch.allclose(got, v_c, atol=1e-4)
