"""What makes an off-policy update (and PPO's minibatch update) fast on a CPU: the whole update
as one compiled graph.

An update written with these pieces runs eagerly as it is, or compiled by `torch.compile` into
one graph of fused kernels around the matmuls:
- gradients (`gradients`: torch.func's `grad_and_value` when compiled) of a loss written as a
  function of the parameters being trained; everything else (the critics inside an actor loss,
  the targets) is a constant of that loss, so no gradient is computed for it and thrown away;
- `Adam` with foreach ops on those parameters, its step count a float32 tensor (a float64 one
  in the graph gave NaNs);
- no random number generation inside: the caller draws the noises (an in-graph randn cost
  ~130 us).

Measured on this 2-core machine (SAC, batch 256, 2x256 MLPs, 2 threads): eager 8.0 ms an
update, compiled 4.4 ms, Stable-Baselines3 10.8 ms. The matmuls alone take ~3.3 ms of the
compiled update (~175 GFLOP/s on 2 threads, oneDNN no faster than MKL on this CPU), so fusing
the rest is all compilation can win. Tried and dropped, no gain here: fp32 matmuls through
oneDNN, a ReLU saving its float output, one flat buffer for Adam, max-autotune, bf16 autocast
of every layer (slower: the casts cost more than the bf16 matmuls save). bf16 for the hidden
layers alone is the opt-in `matmul_precision: bf16` (policies/offpolicy_networks.py `Linear`).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import grad_and_value

Params = dict[str, torch.Tensor]

COMPILE_CHOICES = ("auto", "always", "never")
MIN_UPDATES_TO_COMPILE = 8_000
"""Compiling costs 5 s (warm cache in /tmp/torchinductor_*) to 30 s (cold) once and saves
~3.5 ms an update: from 8,000 updates on it pays even when cold."""


ONEDNN_FP32_TOLERANCE = 1e-5
"""Largest error, relative to the product's largest entry, that oneDNN's products may have
against float64 to count as fp32 (measured here: 9e-7, MKL's 8e-7; a bf16 product: ~1e-2)."""


@functools.cache
def onednn_keeps_fp32() -> bool:
    """Whether oneDNN, when torch lets it take fp32 matmuls, computes them in fp32 on this CPU.

    torch sends fp32 matmuls to MKL, which on AMD CPUs runs its AVX2 code: on this machine's
    Zen 5 (512-bit FMA units) a 256x256x256 product takes 171-199 us on 2 threads, where
    oneDNN's AVX-512 code takes 84 us. torch routes them to oneDNN only under
    `torch.backends.mkldnn.matmul.fp32_precision = "bf16"`, a setting that allows bf16 math: on a
    CPU with AMX oneDNN would take it. So this checks, once a process, that the products stay
    fp32 here (a batch of the shapes an update multiplies, against float64)."""
    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    with fast_matmuls(True):
        for rows, inner, cols in ((256, 256, 256), (256, 23, 256), (6, 256, 256)):
            a = torch.randn(rows, inner, generator=generator)
            b = torch.randn(inner, cols, generator=generator)
            exact = a.double() @ b.double()
            error = ((a @ b).double() - exact).abs().max() / exact.abs().max()
            if error > ONEDNN_FP32_TOLERANCE:
                return False
    return True


@contextlib.contextmanager
def fast_matmuls(enabled: bool) -> Iterator[None]:
    """fp32 matmuls on oneDNN while inside (when `enabled`), MKL again after. For batches of
    updates only: oneDNN costs ~15 us more a call, so a product of one row (acting) or of
    64x64 layers is slower there (1x256 by 256x256: 23 us against MKL's 5), a 256-row
    product of 256x256 layers about 1.6-2x faster."""
    if not enabled:
        yield
        return
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        yield
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before


def parameters_of(module: nn.Module) -> Params:
    """The module's parameters by name: what a loss written for `torch.func` differentiates."""
    return dict(module.named_parameters())


class Adam:
    """Adam (Kingma and Ba 2015, PyTorch's defaults) updating a dict of parameters in place
    with foreach ops, so it traces into the compiled update. Same numbers as torch.optim.Adam."""

    def __init__(self, params: Params, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.names = list(params)
        self.params = list(params.values())
        # A tensor, not a float: a compiled update reads it at every call, so a schedule can
        # change it (a float would be baked into the graph).
        self.lr = torch.tensor(lr, dtype=torch.float32)
        self.betas, self.eps = betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = torch.zeros((), dtype=torch.float32)

    def set_learning_rate(self, rate: float) -> None:
        self.lr.fill_(rate)

    @torch.no_grad()
    def step(self, grads: Params) -> None:
        beta1, beta2 = self.betas
        grad_list = [grads[name] for name in self.names]
        self.step_count.add_(1.0)
        torch._foreach_lerp_(self.exp_avg, grad_list, 1.0 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grad_list, grad_list, 1.0 - beta2)
        bias_correction1 = 1.0 - torch.pow(beta1, self.step_count)
        bias_correction2_sqrt = (1.0 - torch.pow(beta2, self.step_count)).sqrt()
        denominator = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denominator, bias_correction2_sqrt)
        torch._foreach_add_(denominator, self.eps)
        steps = torch._foreach_div(self.exp_avg, denominator)
        torch._foreach_mul_(steps, -self.lr / bias_correction1)
        torch._foreach_add_(self.params, steps)

    def state_dict(self) -> dict[str, Any]:
        return {"names": self.names, "exp_avg": [t.clone() for t in self.exp_avg],
                "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
                "step": self.step_count.clone()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "names" not in state:
            raise ValueError("the checkpoint's optimizer state is torch.optim's, written before "
                             "this algorithm moved to policies/compiled.py's Adam: train anew")
        if state["names"] != self.names:
            raise ValueError(f"optimizer state is for parameters {state['names']}, "
                             f"not {self.names}: the checkpoint is from another network")
        torch._foreach_copy_(self.exp_avg, state["exp_avg"])
        torch._foreach_copy_(self.exp_avg_sq, state["exp_avg_sq"])
        self.step_count.copy_(state["step"])


def gradients(loss_of: Callable[[Params], Any], params: Params,
              has_aux: bool = False) -> tuple[Params, Any]:
    """`torch.func.grad_and_value(loss_of, has_aux=has_aux)(params)`: (gradients, value), the
    value being the loss, or (loss, aux) when `loss_of` returns both.

    Being compiled, it is exactly that: torch.func traces into the update's one graph. Eager,
    plain autograd on the same parameters gives the same gradients for less per op (a PPO
    minibatch of 64x64 MLPs: 1.6 vs 2.3 ms)."""
    if torch.compiler.is_compiling():
        return grad_and_value(loss_of, has_aux=has_aux)(params)
    with torch.enable_grad():
        value = loss_of(params)
    loss = value[0] if has_aux else value
    grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads, strict=True)), _detached(value)


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_detached(v) for v in value)
    return value


def clip_grad_norm(grads: Params, max_norm: float | None) -> Params:
    """torch.nn.utils.clip_grad_norm_ on a dict of gradients, so it traces into a compiled
    update: all scaled by max_norm / norm when their global norm is above max_norm."""
    if max_norm is None:
        return grads
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads.values()))))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return dict(zip(grads, torch._foreach_mul(list(grads.values()), scale), strict=True))


def should_compile(choice: str, updates: int, min_updates: int = MIN_UPDATES_TO_COMPILE) -> bool:
    """`choice` "auto" compiles runs of at least `min_updates` updates."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_CHOICES)}; got {choice!r}")
    return choice == "always" or (choice == "auto" and updates >= min_updates)


def compile_update(update: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
    """`update` compiled as one graph when `enabled` (the first call compiles), else as it is.
    fullgraph: a graph break would silently fall back to slow pieces, so it is an error."""
    if not enabled:
        return update

    def step(*args: Any) -> Any:
        with torch.no_grad():
            return update(*args)

    # A code object of its own for each run. Dynamo keeps compiled graphs per code object, at
    # most 8: runs sharing one (every update compiled through torch.no_grad's wrapper did) fail
    # from the 9th in a process, and each run's graphs would keep its tensors alive.
    step.__code__ = step.__code__.replace(co_varnames=step.__code__.co_varnames)
    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    seen: set[tuple] = set()

    def call(*args: Any) -> Any:
        if not seen:  # the one-off compile is a long pause: say what it is (above the bar)
            print(f"compiling the {getattr(update, '__name__', 'update')} (once, 5-30 s; "
                  "--set '{\"compile\": \"never\"}' skips it)", file=sys.stderr, flush=True)
        # Once inputs of these shapes have been through, skip re-checking the guards (that the
        # parameters, optimizer states and config constants the graph closed over are still
        # what they were): they cannot change during a run, and checking them cost ~1 ms an
        # update. New shapes (PPO's last, shorter minibatch) go through the guards, which
        # compile a graph for them: under the unsafe stance that recompile raises instead.
        shapes = _shapes(args)
        if shapes not in seen:
            seen.add(shapes)
            return compiled(*args)
        with torch.compiler.set_stance("default", skip_guard_eval_unsafe=True):
            return compiled(*args)

    return call


def _shapes(value: Any) -> tuple:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return tuple((k, _shapes(v)) for k, v in value.items())
    if isinstance(value, tuple | list):
        return tuple(_shapes(v) for v in value)
    return (value is None,)
