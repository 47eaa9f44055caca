"""Issue 19, items 3-5: every size a user can type is refused in seconds, before anything is
allocated or written, with the estimate (or the cap), the real image size and the fix; ranges
and ODE intervals that float32 cannot hold are refused (one line, exit 2)."""

import pytest
from refusals import DATA, S, refused, snapshot

from odenet.errors import ConfigError
from odenet.sizes import format_bytes, total_memory


# ---- item 3: one estimate per kind of work ------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "words"),
    [(["--depth", "100004", "--width", "4"], ["50,001", "more than the 2,000 allowed",
                                               "at most 3998 for arch 'cifar'"]),
     (["--arch", "single", "--depth", "200002"], ["100,000", "at most 4002 for arch 'single'"])],
)  # fmt: skip
def test_describe_refuses_networks_with_too_many_fields(run_cli, argv, words):
    refused(run_cli, ["describe", *argv], None, *words)


def test_the_deepest_allowed_network_is_valid_and_one_more_stage_is_not():
    from odenet.nets import ModelConfig
    from odenet.nets.memory import MAX_FIELDS, field_count

    ok = ModelConfig(depth=6 * (MAX_FIELDS // 3) + 2, width=1)
    ok.validate()
    assert field_count(ok) == MAX_FIELDS - MAX_FIELDS % 3
    with pytest.raises(ConfigError, match="residual fields"):
        ModelConfig(depth=ok.depth + 6, width=1).validate()
    # a continuous network builds one field per stage, whatever its depth's n
    assert field_count(ModelConfig(depth=100004, solver="ode-rk4", width=1)) == 3


def test_the_estimate_names_the_real_image_size(monkeypatch):
    """The message names the images the network is trained on: 8x8 data is "at 8x8" (not the
    32x32 a network without data is described at), and without an image size (validate,
    which knows no data) only the parameters are checked."""
    import odenet.sizes
    from odenet.nets import ModelConfig
    from odenet.nets.memory import check_fits, estimate

    config = ModelConfig(depth=8, width=16)
    need = estimate(config, image_size=8, batch_size=64)
    monkeypatch.setattr(odenet.sizes, "total_memory", lambda: need.total - 1)
    with pytest.raises(ConfigError) as err:
        check_fits(config, 8, 64)
    text = str(err.value)
    assert "at 8x8" in text and "32x32" not in text and "batch of 64" in text
    assert f"needs about {format_bytes(need.total)} to train" in text
    assert "--batch-size" in text
    check_fits(config, 8, 1)  # a smaller batch fits
    config.validate()  # the parameters alone fit


def test_train_refuses_a_dataset_too_large_for_memory(run_cli, tmp_path):
    data = "synthetic:train=1000000000,test=128,size=8"
    out = tmp_path / "run"
    argv = ["train", "--dataset", data, "--depth", "8", "--width", "4", "--device", "cpu"]
    refused(run_cli, [*argv, "--out", str(out)], None,
            "dataset 'synthetic' needs about", "1,000,000,000 + 128 images of 3x8x8",
            "use smaller train=, test= or size= values")  # fmt: skip
    assert not out.exists()


def test_synthetic_estimate_bounds_what_loading_takes():
    """The estimate covers what loading measured (module docstring of odenet.data.memory):
    it is an upper bound within a factor 1.5 of it, for 1 and 3 channels."""
    from odenet.data.memory import STATS_BYTES_PER_PIXEL
    from odenet.data.synthetic import MAKE_BYTES, MAKE_BYTES_PER_CHANNEL

    for channels, measured in ((3, 51.6), (1, 25.6)):  # bytes per training image position
        made = MAKE_BYTES + MAKE_BYTES_PER_CHANNEL * channels
        estimate = channels + max(made, STATS_BYTES_PER_PIXEL * channels)
        assert measured <= estimate <= 1.5 * measured


def test_study_refuses_an_image_size_too_large_for_memory(run_cli, tmp_path):
    data = "synthetic:train=256,test=128,size=100000"
    argv = ["study", *S, "--orders", "1", "--lrs", "0.1", "--out", str(tmp_path / "X")]
    argv[argv.index(DATA)] = data
    refused(run_cli, argv, None, "256 + 128 images of 3x100000x100000")
    assert list(tmp_path.iterdir()) == []


def test_imagefolder_refuses_a_size_too_large_for_memory(run_cli, tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / "P" / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "P" / split / c / "0.png")
    before = snapshot(tmp_path)
    argv = ["train", "--dataset", f"imagefolder:{tmp_path / 'P'},size=100000", "--depth", "8",
            "--width", "4", "--device", "cpu"]  # fmt: skip
    refused(run_cli, argv, None, "2 + 2 images of 3x100000x100000", "use a smaller size=")
    assert snapshot(tmp_path) == before  # no cache written either


def test_landscape_refuses_grids_of_too_many_points(run_cli, finished_copy):
    d = finished_copy
    line = refused(run_cli, ["landscape", str(d), "--points", "1000000000"], d,
                   "1,000,000,000", "more than the 250,000 allowed")  # fmt: skip
    assert "--points 250000 or fewer" in line
    refused(run_cli, ["landscape", str(d), "--dims", "2", "--points", "100000"], d,
            "10,000,000,000", "--points 500 or fewer")  # fmt: skip


def test_landscape_refuses_an_evaluation_too_large_for_memory(run_cli, finished_copy):
    argv = ["landscape", str(finished_copy), "--lr", "0.1", "--points", "100000",
            "--points-per-batch", "100000"]  # fmt: skip
    refused(run_cli, argv, finished_copy, "the landscape of d8-euler-lr0.1-s0 needs about",
            "100000 weight points", "at 8x8", "--points-per-batch")  # fmt: skip


def test_analyze_refuses_a_krylov_space_too_large_for_memory(run_cli, finished_copy):
    d = finished_copy
    refused(run_cli, ["analyze", str(d), "--lr", "0.1", "--krylov", "100000"], d,
            "field spectra of d8-euler-lr0.1-s0", "100,000 Krylov vectors",
            "64 images' states of 256 values", "--krylov")  # fmt: skip


def test_krylov_estimate_counts_the_arnoldi_arrays():
    """basis and products (float32), one complex128 combination at a time, Hessenberg
    matrices (float64, with a CPU copy) and their complex eigenvectors."""
    from odenet.analysis.eigen import krylov_bytes

    m, n, d = 20, 64, 16 * 32 * 32
    assert krylov_bytes(m, n, d) == m * n * d * (4 + 4 + 16) + n * m * m * (8 + 8 + 16)


def test_a_grid_of_millions_of_runs_is_refused_without_enumerating_it(run_cli, tmp_path):
    import time

    log_every = ",".join(str(i) for i in range(1, 5001))
    decays = ",".join(f"{i}e-7" for i in range(1, 12001))  # 5000 x 12000 = 60M runs
    argv = ["study", *S, "--orders", "1", "--lrs", "0.1", "--axis", f"log_every={log_every}",
            "--axis", f"weight_decay={decays}", "--out", str(tmp_path / "G")]  # fmt: skip
    start = time.monotonic()
    refused(run_cli, argv, None, "the number of runs", "12000 weight_decay x 5000 log_every",
            "is 60,000,000, more than the 100,000 allowed", "split the grid")  # fmt: skip
    assert time.monotonic() - start < 30  # the lengths decide it, not the grid
    assert list(tmp_path.iterdir()) == []


def test_the_largest_grid_allowed_is_built():
    from odenet.studies import StudySpec
    from odenet.studies.spec import MAX_RUNS

    with pytest.raises(ConfigError, match="is 100,001, more than the 100,000"):
        StudySpec(depths=(8,), orders=(1,), lrs=(0.1,), seeds=tuple(range(MAX_RUNS + 1)))


def test_memory_refusals_compare_with_the_machine():
    assert total_memory() is not None and total_memory() > 2**20
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**40) == "3.0 TiB"


def test_landscape_refuses_a_seed_torch_cannot_take(run_cli, finished_copy):
    argv = ["landscape", str(finished_copy), "--direction-seed", str(2**64), "--points", "3"]
    refused(run_cli, argv, finished_copy, "--direction-seed must be in [-2**63, 2**64 - 1]")


# ---- item 4: landscape ranges that float32 cannot hold ------------------------------------
@pytest.mark.parametrize(
    ("text", "words"),
    [("-1e308:1e308", "the grid's ends must fit float32"),
     ("1e30:1.0000001e30", "cannot tell its 51 points apart")],
)  # fmt: skip
def test_landscape_refuses_ranges_float32_cannot_hold(run_cli, finished_copy, text, words):
    refused(run_cli, ["landscape", str(finished_copy), f"--range={text}"], finished_copy, words)


def test_landscape_refuses_a_range_whose_weights_overflow(monkeypatch, run_cli, finished_copy):
    """The weights theta + a d at the grid's corners must be finite in float32: a direction
    scaled up (a checkpoint with large filters) overflows at a range float32 can hold."""
    import odenet.analysis.landscape as landscape

    real = landscape.make_directions

    def large(model, count, seed, **kw):
        return [{k: v * 1e10 for k, v in d.items()} for d in real(model, count, seed, **kw)]

    monkeypatch.setattr(landscape, "make_directions", large)
    argv = ["landscape", str(finished_copy), "--lr", "0.1", "--range=-1e30:1e30", "--points", "3"]
    refused(
        run_cli, argv, finished_copy, "overflow float32 at the grid's ends", "d8-euler-lr0.1-s0"
    )


# ---- item 5: ODE intervals -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("solver", "t1"), [("ode-dopri5", "1e20"), ("ode-rk4", "1e300"), ("ode-euler", "1e300")]
)
def test_describe_refuses_ode_intervals_float32_cannot_integrate(run_cli, solver, t1):
    refused(run_cli, ["describe", "--solver", solver, "--depth", "8", "--width", "4",
                      "--ode-t1", t1], None, "ode_t1 must be in (0, 1e+06]")  # fmt: skip


def test_the_longest_ode_interval_allowed_integrates():
    """At the cap every continuous scheme still gives finite outputs (a random network)."""
    import torch

    from odenet.nets import ModelConfig, build_from_config
    from odenet.nets.config import MAX_ODE_T1

    for solver in ("ode-dopri5", "ode-rk4", "ode-euler"):
        config = ModelConfig(depth=8, width=4, solver=solver, ode_t1=MAX_ODE_T1)
        model = build_from_config(config, torch.Generator().manual_seed(0)).eval()
        with torch.no_grad():
            assert torch.isfinite(model(torch.randn(2, 3, 8, 8))).all()
