"""Stability functions and regions against closed forms and independent computations."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import odenet.solvers as S
from odenet.errors import ConfigError
from odenet.solvers.stability import (
    boundary_locus,
    imag_extent,
    in_region,
    real_extent,
    stability_function,
)

RK = [n for n in S.available() if isinstance(S.get(n), S.RungeKutta)]
TWO_STEP = ["lm", "ab2", "leapfrog"]
RNG = np.random.default_rng(0)
Z = RNG.uniform(-3, 1, 200) + 1j * RNG.uniform(-3, 3, 200)


def _dense_r(name: str, z: np.ndarray) -> np.ndarray:
    """R(z) = 1 + z b^T (I - z A)^{-1} 1 by a dense solve at every point (independent)."""
    tab = S.get(name).tableau
    s = tab.stages
    a = np.zeros((s, s))
    for i, row in enumerate(tab.a):
        a[i, : len(row)] = row
    b = np.array(tab.b)
    return np.array([1 + zi * b @ np.linalg.solve(np.eye(s) - zi * a, np.ones(s)) for zi in z])


@pytest.mark.parametrize(
    "name, closed",
    [
        ("euler", lambda z: 1 + z),
        ("heun", lambda z: 1 + z + z**2 / 2),
        ("midpoint", lambda z: 1 + z + z**2 / 2),
        ("rk3", lambda z: sum(z**k / math.factorial(k) for k in range(4))),
        ("rk4", lambda z: sum(z**k / math.factorial(k) for k in range(5))),
        ("rk38", lambda z: sum(z**k / math.factorial(k) for k in range(5))),
        ("gill", lambda z: sum(z**k / math.factorial(k) for k in range(5))),
    ],
)
def test_stability_function_matches_closed_form(name, closed):
    np.testing.assert_allclose(stability_function(name)(Z), closed(Z), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", RK)
def test_stability_function_equals_dense_formula(name):
    got = stability_function(name)(Z)
    assert got.shape == Z.shape and got.dtype == np.complex128
    np.testing.assert_allclose(got, _dense_r(name, Z), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", RK)
def test_stability_function_agrees_with_exp_to_the_order(name):
    """R(z) - e^z = O(z^{p+1}) for a method of order p: the error falls like |z|^{p+1}."""
    p = S.get(name).order
    z1, z2 = 0.2 * np.exp(0.7j), 0.1 * np.exp(0.7j)
    R = stability_function(name)
    e1, e2 = abs(R(z1) - np.exp(z1)), abs(R(z2) - np.exp(z2))
    assert math.log2(e1 / e2) > p + 0.5


@pytest.mark.parametrize("name", RK)
def test_in_region_is_modulus_of_r(name):
    inside = in_region(name, Z)
    np.testing.assert_array_equal(inside, np.abs(_dense_r(name, Z)) <= 1 + 1e-12)


@pytest.mark.parametrize("name", RK)
def test_boundary_locus_lies_on_unit_modulus(name):
    locus = boundary_locus(name, points=101)
    finite = locus[np.isfinite(locus)]
    assert finite.size >= 101
    np.testing.assert_allclose(np.abs(_dense_r(name, finite)), 1.0, atol=1e-8)


@pytest.mark.parametrize("name", RK)
def test_real_extent_is_the_edge_of_the_stable_interval(name):
    x = real_extent(name)
    assert x < 0
    R = stability_function(name)
    inner = np.linspace(x, 0.0, 2001)
    assert np.all(np.abs(R(inner + 0j)) <= 1 + 1e-12)
    assert abs(R(x - 1e-6 + 0j)) > 1.0  # just outside


def test_known_extents():
    assert abs(real_extent("rk4") - (-2.785)) < 1e-3
    assert abs(real_extent("rk4") - (-2.7852935634)) < 1e-9
    assert abs(real_extent("rk3") - (-2.5127453266)) < 1e-9
    for name in ("euler", "heun", "midpoint", "ralston", "lm"):
        assert abs(real_extent(name) + 2.0) < 1e-9
        assert imag_extent(name) == 0.0
    assert abs(imag_extent("rk4") - math.sqrt(8)) < 1e-9  # |R(iy)|^2 = 1 - y^6/72 + y^8/576
    assert abs(imag_extent("rk3") - math.sqrt(3)) < 1e-9  # |R(iy)|^2 = 1 - y^4/12 + y^6/36
    assert abs(real_extent("ab2") + 1.0) < 1e-9 and imag_extent("ab2") == 0.0
    assert real_extent("leapfrog") == 0.0 and abs(imag_extent("leapfrog") - 1.0) < 1e-6


def _roots_stable(coeffs, z):
    """Root condition with numpy's companion-matrix roots (independent of the closed form)."""
    a1, a0, b1, b0 = coeffs
    r = np.roots([1.0, -(a1 + z * b1), -(a0 + z * b0)])
    return bool(np.all(np.abs(r) <= 1 + 1e-9))


@pytest.mark.parametrize(
    "name, coeffs",
    [
        ("ab2", (1.0, 0.0, 1.5, -0.5)),
        ("lm", (1.0, 0.0, 1.0, 0.0)),
        ("leapfrog", (0.0, 1.0, 2.0, 0.0)),
    ],
)
def test_multistep_root_condition(name, coeffs):
    # points away from the boundary (a margin of 1e-3 in |zeta|) decide the same either way
    for z in Z:
        r = np.abs(np.roots([1.0, -(coeffs[0] + z * coeffs[2]), -(coeffs[1] + z * coeffs[3])]))
        if np.all(np.abs(r - 1.0) > 1e-3):
            assert in_region(name, np.array([z]))[0] == _roots_stable(coeffs, z), (name, z)
    # the boundary locus maps the unit circle: a root of modulus 1 at each point
    for z in boundary_locus(name, points=64):
        r = np.roots([1.0, -(coeffs[0] + z * coeffs[2]), -(coeffs[1] + z * coeffs[3])])
        assert np.min(np.abs(np.abs(r) - 1.0)) < 1e-9


def test_lm_region_depends_on_k():
    """zeta = -1 is a root of zeta^2 - (1 - k + z) zeta - k at z = -2 + 2k: the real extent."""
    z = np.array([-2.1 + 0j])
    assert not in_region("lm", z)[0]  # k = 0: Euler's disc ends at -2
    assert in_region("lm", z, k=-0.1)[0]
    r = np.roots([1.0, -(1.1 - 2.1), 0.1])  # independent check of the same point
    assert np.max(np.abs(r)) <= 1
    for k in (-0.1, -0.05, 0.2):
        assert abs(real_extent("lm", k=k) - (-2 + 2 * k)) < 1e-9


def test_leapfrog_double_root_at_i_is_unstable():
    assert in_region("leapfrog", np.array([0.999j]))[0]
    assert not in_region("leapfrog", np.array([1j, 1.001j, -0.01 + 0.5j]))[0:3].any()


def test_multistep_has_no_one_step_function():
    with pytest.raises(ConfigError, match="in_region"):
        stability_function("ab2")


@pytest.mark.parametrize("name", ["ode-dopri5", "ode-euler"])
def test_schemes_without_region_are_refused(name):
    for call in (
        lambda: stability_function(name),
        lambda: in_region(name, np.zeros(1)),
        lambda: boundary_locus(name),
        lambda: real_extent(name),
    ):
        with pytest.raises(ConfigError, match="no stability region") as err:
            call()
        assert "\n" not in str(err.value)


def test_listing_has_extents_and_figure_is_written(tmp_path):
    from odenet.solvers.catalog import solver_table
    from odenet.solvers.stability_plot import region_schemes, write_stability_figure

    by = {r["name"]: r for r in solver_table()}
    assert abs(by["rk4"]["real_extent"] + 2.785) < 1e-3
    assert abs(by["rk4"]["imag_extent"] - 2.828) < 1e-3
    assert by["ode-dopri5"]["real_extent"] is None and by["ode-dopri5"]["imag_extent"] is None
    assert set(region_schemes()) == set(RK) | set(TWO_STEP)
    png, svg = write_stability_figure(tmp_path / "regions.png", ["euler", "rk4", "leapfrog"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.read_text().count("<svg") == 1
    assert write_stability_figure(tmp_path, ["ab2"])[0] == tmp_path / "stability.png"
    with pytest.raises(ConfigError, match="does not exist"):
        write_stability_figure(tmp_path / "missing" / "x.png")
    with pytest.raises(ConfigError, match=".png or .svg"):
        write_stability_figure(tmp_path / "x.pdf")


@pytest.mark.slow
def test_cli_json_lists_extents_and_stability_figure(tmp_path):
    rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "odenet", "solvers", "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    by = {r["name"]: r for r in rows}
    assert abs(by["rk4"]["real_extent"] + 2.785) < 1e-3
    out = tmp_path / "regions.png"
    done = subprocess.run(
        [sys.executable, "-m", "odenet", "solvers", "--stability", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.with_suffix(".svg").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "odenet", "solvers", "--stability", "--out", "/nonexistent/x.png"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_solvers_import_no_matplotlib():
    """odenet.solvers (stability_plot included) imports with matplotlib blocked: it is loaded
    only when a figure is drawn. (The odenet package __init__ is bypassed: other layers are
    not under test here.)"""
    import odenet

    code = (
        "import sys, types; sys.modules['matplotlib'] = None; "
        "pkg = types.ModuleType('odenet'); pkg.__path__ = [sys.argv[1]]; "
        "sys.modules['odenet'] = pkg; "
        "import odenet.solvers, odenet.solvers.stability_plot as p; "
        "print(len(p.region_schemes()) > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, odenet.__path__[0]], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
