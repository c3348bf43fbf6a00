"""Tests of ``neural_optim``: torch's AdamW + OneCycleLR steps, without torch._dynamo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from nfsynth.models.neural_optim import OneCycleAdamW, one_cycle  # noqa: E402


def _train(kind: str, total: int) -> tuple[list[torch.Tensor], list[tuple[float, float]]]:
    """``total`` clipped steps of a small net (and one parameter that never gets a gradient)
    on seeded batches, with torch's pair (``kind="torch"``) or ``OneCycleAdamW``; returns
    the final parameters and the (rate, beta1) after each step."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    unused = torch.nn.Parameter(torch.ones(2))
    params = [*net.parameters(), unused]
    if kind == "torch":
        opt = torch.optim.AdamW(params, lr=0.005, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.005, total_steps=total, pct_start=0.15
        )
    else:
        mine = OneCycleAdamW(params, max_lr=0.005, total_steps=total, pct_start=0.15)
    g = torch.Generator().manual_seed(1)
    trace = []
    for _ in range(total):
        loss = net(torch.randn(16, 5, generator=g)).pow(2).mean()
        if kind == "torch":
            opt.zero_grad(set_to_none=True)
        else:
            mine.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        if kind == "torch":
            opt.step()
            sched.step()
            trace.append((sched.get_last_lr()[0], opt.param_groups[0]["betas"][0]))
        else:
            mine.step()
            trace.append((mine.lr, mine.beta1))
    return [p.detach().clone() for p in params], trace


@pytest.mark.parametrize("total", [1, 2, 7, 64])
def test_steps_are_bitwise_torchs_adamw_under_one_cycle(total: int) -> None:
    """Setup: the same seeded net and batches. Run: ``total`` steps with torch.optim.AdamW +
    OneCycleLR, then with OneCycleAdamW. Assert: every parameter bitwise equal (the unused
    one untouched by either: no gradient, no weight decay), the same rate and beta1 after
    every step."""
    ref, ref_trace = _train("torch", total)
    got, trace = _train("mine", total)
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    assert torch.equal(got[-1], torch.ones(2))
    assert trace == ref_trace


def test_one_cycle_rises_to_the_peak_then_anneals_to_its_floor() -> None:
    """Setup: 100 steps, peak 0.01 at 15%. Assert: the rate starts at peak/25 with beta1
    0.95, reaches the peak with beta1 0.85 at step 14, and ends at peak/25/1e4 with beta1
    0.95; steps outside 0..100 are refused, and so is stepping past the schedule."""
    assert one_cycle(0, 100, 0.01, 0.15) == pytest.approx((0.0004, 0.95))
    assert one_cycle(14, 100, 0.01, 0.15) == pytest.approx((0.01, 0.85))
    assert one_cycle(99, 100, 0.01, 0.15) == pytest.approx((0.0004 / 1e4, 0.95))
    with pytest.raises(ValueError, match="outside"):
        one_cycle(101, 100, 0.01, 0.15)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = OneCycleAdamW([p], max_lr=0.01, total_steps=1)
    p.grad = torch.ones(1)
    opt.step()
    with pytest.raises(ValueError, match="spent"):
        opt.step()


def test_a_neural_fit_imports_no_compiler() -> None:
    """Setup: a fresh interpreter. Run: fit the neural model on the planted tables of
    test_neural. Assert: neither torch._dynamo nor torch._inductor was imported (importing
    them costs 0.7-0.85 s of a fit on a 2-core machine; constructing a torch optimizer or
    setting the deterministic flag imports them)."""
    code = (
        "import sys\n"
        "from tests.models.test_neural import SMALL, ROLES2, make_flows\n"
        "from nfsynth.models.neural import NeuralFlowModel\n"
        "hp = {**SMALL, 'epochs': 2, 'max_train_flows': 400}\n"
        "NeuralFlowModel(**hp).fit(make_flows(ROLES2, per_day=100), seed=0)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', "
        "'torch._inductor'))))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
