"""AdamW under a one-cycle schedule, stepped through torch's functional AdamW.

``OneCycleAdamW`` takes the same steps as ``torch.optim.AdamW`` driven by
``torch.optim.lr_scheduler.OneCycleLR`` (cosine annealing, ``div_factor`` 25,
``final_div_factor`` 1e4, beta1 cycled between 0.85 and 0.95): each step calls torch's
functional AdamW, ``torch.optim.adamw.adamw``, which runs the update ``AdamW.step`` runs
(``adam`` with decoupled weight decay) on the same state tensors with the same arguments,
and the learning rate and beta1 follow OneCycleLR's own formula. The parameters it produces
are bitwise those of the torch pair (tested).

Why not the torch pair itself: constructing any ``torch.optim.Optimizer`` imports
``torch._dynamo`` (``Optimizer.__init__`` and ``step`` are wrapped to disable it), and that
import costs 0.7-0.85 s of CPU on a 2-core machine, a tenth of a default neural fit, for a
compiler the fit never uses. The functional AdamW does not import it unless it runs under
``torch.compile``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.adamw import adamw

#: OneCycleLR's defaults, kept here so the schedule is the documented one.
DIV_FACTOR = 25.0
FINAL_DIV_FACTOR = 1e4
BASE_MOMENTUM = 0.85
MAX_MOMENTUM = 0.95


def _anneal_cos(start: float, end: float, pct: float) -> float:
    """OneCycleLR's cosine interpolation from ``start`` (pct 0) to ``end`` (pct 1)."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def one_cycle(step: int, total_steps: int, max_lr: float, pct_start: float) -> tuple[float, float]:
    """(learning rate, beta1) of OneCycleLR's two-phase cosine schedule at ``step``
    (0-based optimizer steps, ``0 <= step <= total_steps``): the rate rises from
    ``max_lr / 25`` to ``max_lr`` over the first ``pct_start`` of the steps while beta1 falls
    from 0.95 to 0.85, then the rate falls to ``max_lr / 25 / 1e4`` as beta1 rises back."""
    if not 0 <= step <= total_steps:
        raise ValueError(f"step {step} outside the schedule's 0..{total_steps}")
    initial = max_lr / DIV_FACTOR
    phases = (
        (float(pct_start * total_steps) - 1, initial, max_lr, MAX_MOMENTUM, BASE_MOMENTUM),
        (total_steps - 1, max_lr, initial / FINAL_DIV_FACTOR, BASE_MOMENTUM, MAX_MOMENTUM),
    )
    start_step = 0.0
    for i, (end_step, lr0, lr1, m0, m1) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return _anneal_cos(lr0, lr1, pct), _anneal_cos(m0, m1, pct)
        start_step = end_step
    raise AssertionError("unreachable")


class OneCycleAdamW:
    """AdamW (decoupled weight decay, beta2 0.999, eps 1e-8) with a one-cycle schedule.

    Use as ``zero_grad()``, ``loss.backward()``, ``step()``: ``step`` applies the update at
    the current rate and beta1, then advances the schedule (``optimizer.step()`` followed by
    ``scheduler.step()`` in torch's terms). Parameters whose gradient is ``None`` are skipped
    and get no state, as in ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        max_lr: float,
        total_steps: int,
        weight_decay: float = 0.01,
        pct_start: float = 0.3,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        self.params = list(params)
        self.max_lr, self.total_steps, self.pct_start = float(max_lr), int(total_steps), pct_start
        self.weight_decay, self.beta2, self.eps = float(weight_decay), float(beta2), float(eps)
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.step_count = 0
        self.lr, self.beta1 = one_cycle(0, self.total_steps, self.max_lr, pct_start)

    @property
    def param_groups(self) -> list[dict]:
        """One group of every parameter, as ``torch.optim`` has them: what a
        ``torch.amp.GradScaler`` reads to unscale the gradients before ``step``."""
        return [{"params": self.params}]

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One AdamW update of every parameter with a gradient, then the next rate."""
        if self.step_count >= self.total_steps:
            raise ValueError(f"the schedule's {self.total_steps} steps are spent")
        params, grads, avgs, sqs, steps = [], [], [], [], []
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("OneCycleAdamW does not support sparse gradients")
            if i not in self.state:  # AdamW's lazy state: the step count on the CPU
                wide = torch.get_default_dtype() == torch.float64
                self.state[i] = (
                    torch.tensor(0.0, dtype=torch.float64 if wide else torch.float32),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                    torch.zeros_like(p, memory_format=torch.preserve_format),
                )
            step_t, avg, sq = self.state[i]
            params.append(p)
            grads.append(p.grad)
            avgs.append(avg)
            sqs.append(sq)
            steps.append(step_t)
        if params:
            adamw(
                params,
                grads,
                avgs,
                sqs,
                [],
                steps,
                foreach=None,
                capturable=False,
                differentiable=False,
                fused=None,
                grad_scale=None,
                found_inf=None,
                has_complex=any(torch.is_complex(p) for p in params),
                amsgrad=False,
                beta1=self.beta1,
                beta2=self.beta2,
                lr=self.lr,
                weight_decay=self.weight_decay,
                eps=self.eps,
                maximize=False,
            )
        self.step_count += 1
        self.lr, self.beta1 = one_cycle(
            self.step_count, self.total_steps, self.max_lr, self.pct_start
        )
