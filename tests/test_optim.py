"""Optimizers against torch.optim over several steps, clipping, schedules."""
import numpy as np
import pytest

import cpuformer as cf
from helpers import assert_close, torch_or_skip


def _pair(torch, rng):
    t = torch.nn.Sequential(torch.nn.Linear(7, 5))
    m = cf.nn.Linear(7, 5)
    m.load_state_dict({k.split(".", 1)[1]: v.detach().numpy() for k, v in t.state_dict().items()})
    return m, t


def _run(torch, m, t, opt, topt, rng, steps=6):
    tparams = dict(t.named_parameters())
    for _ in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        for name, g in m.gradients().items():
            val = rng.standard_normal(g.shape).astype(np.float32)
            g[...] = val
            tparams["0." + name].grad = torch.tensor(val)
        opt.step()
        topt.step()
    for name, p in m.parameters().items():
        assert_close(p, tparams["0." + name].detach().numpy(), 2e-6, name)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adamw_matches_torch(wd, rng):
    torch = torch_or_skip()
    m, t = _pair(torch, rng)
    opt = cf.optim.AdamW(m, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    topt = torch.optim.AdamW(t.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd)
    _run(torch, m, t, opt, topt, rng)


def test_adamw_no_decay_groups(rng):
    torch = torch_or_skip()
    m, t = _pair(torch, rng)
    opt = cf.optim.AdamW(m, lr=0.02, weight_decay=0.5, no_decay=("bias",))
    topt = torch.optim.AdamW([{"params": [t[0].weight], "weight_decay": 0.5},
                              {"params": [t[0].bias], "weight_decay": 0.0}], lr=0.02)
    _run(torch, m, t, opt, topt, rng)


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 0.01), (0.9, True, 0.0)])
def test_sgd_matches_torch(momentum, nesterov, wd, rng):
    torch = torch_or_skip()
    m, t = _pair(torch, rng)
    opt = cf.optim.SGD(m, lr=0.05, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    topt = torch.optim.SGD(t.parameters(), lr=0.05, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    _run(torch, m, t, opt, topt, rng)


def test_clip_grad_norm_matches_definition(rng):
    m = cf.nn.Linear(4, 3)
    for g in m.gradients().values():
        g[...] = rng.standard_normal(g.shape)
    flat = np.concatenate([g.ravel() for g in m.gradients().values()]).astype(np.float64)
    norm = cf.optim.clip_grad_norm_(m, 0.5)
    assert abs(norm - np.linalg.norm(flat)) < 1e-4 * norm
    after = np.concatenate([g.ravel() for g in m.gradients().values()])
    assert abs(np.linalg.norm(after) - 0.5) < 1e-3


def test_optimizer_state_round_trip(rng):
    m = cf.nn.Linear(3, 2)
    opt = cf.optim.AdamW(m, lr=0.1)
    for _ in range(3):
        for g in m.gradients().values():
            g[...] = rng.standard_normal(g.shape)
        opt.step()
    sd = opt.state_dict()
    m2 = cf.nn.Linear(3, 2)
    m2.load_state_dict(m.state_dict())
    opt2 = cf.optim.AdamW(m2, lr=0.5)
    opt2.load_state_dict(sd)
    assert opt2.step_count == 3 and opt2.lr == pytest.approx(0.1)
    g = {k: rng.standard_normal(v.shape) for k, v in m.gradients().items()}
    for mm, oo in ((m, opt), (m2, opt2)):
        for k, v in mm.gradients().items():
            v[...] = g[k]
        oo.step()
    for k in m.parameters():
        np.testing.assert_array_equal(m.parameters()[k], m2.parameters()[k])
    with pytest.raises(ValueError, match="SGD"):
        cf.optim.SGD(m2, lr=0.1).load_state_dict(sd)


def test_schedules():
    s = cf.optim.WarmupCosine(1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert s(0) == pytest.approx(0.1) and s(9) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55) and s(110) == pytest.approx(0.1)
    lin = cf.optim.WarmupLinear(1.0, 0, 100)
    assert lin(50) == pytest.approx(0.5)


def test_optimizer_bad_input():
    m = cf.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="lr"):
        cf.optim.AdamW(m, lr=-1)
    with pytest.raises(ValueError, match="betas"):
        cf.optim.AdamW(m, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov"):
        cf.optim.SGD(m, lr=0.1, nesterov=True)
    with pytest.raises(TypeError):
        cf.optim.AdamW(object())
    with pytest.raises(ValueError, match="max_norm"):
        cf.optim.clip_grad_norm_(m, 0)
