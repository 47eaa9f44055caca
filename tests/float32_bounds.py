"""Tolerances for one training run computed two ways that round differently in float32.

Fused (grouped convolutions) and separate runs, or one machine's kernels (AVX2) and another's
(AVX-512), compute the same sums in different orders. The bound used here:

* one step: a float32 sum of n terms, whatever order a kernel takes, is within
  (n - 1) eps sum|x_i| of the exact sum (recursive summation; Higham, "Accuracy and Stability
  of Numerical Algorithms", 2nd ed., eq. (4.4)), so two orders differ by at most about
  2 n eps relative to the sum of magnitudes; n is the longest reduction of the network (a
  weight gradient sums over batch x height x width positions);
* t steps: each step starts from the previous weights, so the difference carried over adds to
  the new one: (t + 1) 2 n eps, valid while training does not amplify perturbations, which
  holds for these tiny, short, small-lr runs. The differences measured on this machine (AMD
  EPYC, AVX2) sit 10-100x below the bound (noted at each use).

Accuracies are counts: a difference of size d flips a prediction only where the top-two
logits are closer than d, so two runs may differ by a few images; the bound allows one
flipped image per ``flips`` comparisons.
"""

import torch

EPS = torch.finfo(torch.float32).eps  # 2**-23


def training_rtol(reduction: int, steps: int) -> float:
    """Relative tolerance after ``steps`` SGD steps whose longest sum has ``reduction`` terms."""
    return (steps + 1) * 2 * reduction * EPS


def assert_close_tensor(a: torch.Tensor, b: torch.Tensor, rtol: float, msg: str = "") -> None:
    """Elementwise within rtol of the tensor's scale (max |b|): weights near zero carry the
    absolute error of the sums they came from, not a relative one."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale, msg=msg)


EPS_BF16 = torch.finfo(torch.bfloat16).eps  # 2**-7: bf16 keeps 8 significant bits


def bf16_training_rtol(steps: int) -> float:
    """Relative tolerance between two bf16-autocast runs that round at different points
    (eager rounds every op's output to bf16; a compiled graph fuses ops and rounds once, or
    keeps float32 inside a kernel). One rounding moves a value by up to half an ulp, so two
    roundings of the same value differ by up to EPS_BF16 relative: the loss of a step (a mean,
    which averages rather than accumulates the activations' rounding) differs by about that,
    and each step carries the previous difference on: (steps + 1) EPS_BF16."""
    return (steps + 1) * EPS_BF16
