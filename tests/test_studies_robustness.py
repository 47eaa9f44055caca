"""Robustness metrics on hand-made outcomes: every number is computed by hand in the comments."""

import math

import pytest

from odenet.studies.robustness import Outcome, lr_curve, robustness_table


def _o(lr, seed, status, acc, curve=(), solver="euler", depth=8):
    return Outcome(depth, solver, lr, seed, status, acc, tuple(curve))


def _grid():
    return [
        _o(0.1, 0, "done", 0.80, (0.5, 0.8)),
        _o(0.1, 1, "done", 0.82, (0.6, 0.82)),
        _o(0.2, 0, "done", 0.85, (0.5, 0.78, 0.85)),
        _o(0.2, 1, "done", 0.87, (0.7, 0.75, 0.8, 0.87)),
        _o(0.4, 0, "done", 0.855, (0.855,)),
        _o(0.4, 1, "done", 0.855, (0.855,)),
        _o(0.8, 0, "diverged", None),
        _o(0.8, 1, "done", 0.86, (0.86,)),
        _o(0.1, 0, "diverged", None, solver="heun"),
        _o(0.2, 0, "failed", None, solver="heun"),
    ]


def test_table_values_by_hand():
    euler, heun = robustness_table(_grid())
    assert (euler.depth, euler.solver, euler.runs) == (8, "euler", 8)
    # best stable lr: 0.2 with mean (0.85 + 0.87) / 2; sample std of two values 0.02 apart
    assert euler.best_lr == 0.2
    assert euler.best_acc == pytest.approx(0.86)
    assert euler.best_acc_std == pytest.approx(0.02 / math.sqrt(2))
    # 0.8 has a diverged seed: not stable, even though its other seed reached 0.86
    assert euler.max_stable_lr == 0.4
    # within 1 point (>= 0.85): 0.2 and 0.4 (0.855); 0.1 (0.81) is out -> log2(0.4 / 0.2)
    assert euler.window_octaves == pytest.approx(1.0)
    assert (euler.diverged, euler.failed) == (1, 0)
    # 90% of 0.86 = 0.774: seed 0 reaches it at epoch 2 (0.78), seed 1 at epoch 3 (0.8)
    assert euler.epochs_to_90 == pytest.approx(2.5)
    assert heun.best_acc is None and heun.max_stable_lr is None and heun.window_octaves is None
    assert (heun.diverged, heun.failed, heun.runs) == (1, 1, 2)


def test_window_is_contiguous_around_best():
    runs = [
        _o(0.1, 0, "done", 0.90),
        _o(0.2, 0, "done", 0.905),
        _o(0.4, 0, "done", 0.5),
        _o(0.8, 0, "done", 0.90),
        _o(1.6, 0, "done", 0.10),
    ]
    (row,) = robustness_table(runs)
    assert row.best_lr == 0.2 and row.best_acc_std is None and row.n == 1  # one seed: no std
    assert row.window_octaves == pytest.approx(1.0)  # 0.1..0.2; 0.8 is beyond the dip at 0.4
    assert row.max_stable_lr == 1.6


def test_single_lr_window_zero_and_never_reaching_target():
    (row,) = robustness_table([_o(0.1, 0, "done", 0.9, (0.1, 0.2))])
    assert row.window_octaves == 0.0
    assert row.epochs_to_90 is None  # the curve never reaches 0.81


def test_lr_curve_marks_unstable_lrs_none():
    curve = lr_curve([o for o in _grid() if o.solver == "euler"])
    assert list(curve) == [0.1, 0.2, 0.4, 0.8]
    assert curve[0.8] is None
    assert curve[0.4] == (pytest.approx(0.855), 0.0)


def test_groups_keep_order_and_separate_depths():
    rows = robustness_table([_o(0.1, 0, "done", 0.5, depth=14), _o(0.1, 0, "done", 0.6)])
    assert [(r.depth, r.best_acc) for r in rows] == [(14, 0.5), (8, 0.6)]
