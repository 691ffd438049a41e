"""Similarity engine: exact against a naive per-pair loop, chunk invariant, robust to degenerate kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch.overrides import TorchFunctionMode

from neuroalign_utils.kernels import pipeline
from neuroalign_utils.kernels import similarity as sim


def _naive_one_minus_rmse(neural, artificial, size):
    """Reference: resize, z-score with np.std (ddof=0) and loop over every pair."""
    a_all = sim.resize_kernels(neural, size).reshape(len(neural), -1)
    b_all = sim.resize_kernels(artificial, size).reshape(len(artificial), -1)
    table = np.empty((len(a_all), len(b_all)))
    for i, a in enumerate(a_all):
        a = (a - a.mean()) / a.std()
        for j, b in enumerate(b_all):
            b = (b - b.mean()) / b.std()
            table[i, j] = 1.0 - np.sqrt(np.mean((a - b) ** 2))
    return table


@pytest.fixture(scope="module")
def kernels():
    rng = np.random.default_rng(3)
    neural = xr.DataArray(
        rng.normal(size=(12, 16, 16)),
        dims=("kernel", "y", "x"),
        coords={
            "area": ("kernel", np.repeat(["VISp", "VISl", "VISal"], 4)),
            "cell_class": ("kernel", ["exc", "inh"] * 6),
        },
    )
    artificial = xr.DataArray(
        rng.normal(size=(30, 7, 7)),
        dims=("kernel", "y", "x"),
        coords={
            "model": ("kernel", np.repeat(["m1", "m2"], 15)),
            "layer_type": ("kernel", (["attention"] * 5 + ["convolution"] * 10) * 2),
        },
    )
    # make a few artificial kernels resized copies of neural ones (r near 1: the hard case for precision)
    artificial[:3] = sim.resize_kernels(neural[:3], 7)
    return neural, artificial


def test_matches_naive_per_pair_rmse(kernels):
    neural, artificial = kernels
    result = sim.kernel_similarity(neural, artificial)
    expected = _naive_one_minus_rmse(neural.values, artificial.values, (16, 16))
    np.testing.assert_allclose(result["one_minus_rmse"].values, expected, atol=1e-6)
    # Pearson r from the same product, and the identity 1 - RMSE = 1 - sqrt(2 (1 - r))
    flat_n = sim.resize_kernels(neural, 16).reshape(12, -1)
    flat_a = sim.resize_kernels(artificial, 16).reshape(30, -1)
    r = np.corrcoef(flat_n, flat_a)[:12, 12:]
    np.testing.assert_allclose(result["pearson_r"].values, r, atol=1e-9)
    np.testing.assert_allclose(result["one_minus_rmse"].values, 1 - np.sqrt(2 * (1 - r)), atol=1e-6)
    # metadata carried from both sides
    assert list(result["area"].values) == list(neural["area"].values)
    assert list(result["model"].values) == list(artificial["model"].values)


def test_float32_product_close_to_float64(kernels):
    neural, artificial = kernels
    r64 = sim.kernel_similarity(neural, artificial)["pearson_r"].values
    r32 = sim.kernel_similarity(neural, artificial, dtype="float32")["pearson_r"].values
    np.testing.assert_allclose(r32, r64, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 7, 30, 1000])
def test_chunk_size_invariance(kernels, chunk_size):
    neural, artificial = kernels
    reference = sim.kernel_similarity(neural, artificial, chunk_size=4)
    result = sim.kernel_similarity(neural, artificial, chunk_size=chunk_size)
    # identical up to the floating-point summation order of the BLAS blocks
    np.testing.assert_allclose(result["one_minus_rmse"].values, reference["one_minus_rmse"].values, rtol=0, atol=1e-12)


def test_constant_and_nan_kernels_dropped_with_count(kernels):
    neural, artificial = kernels
    bad = artificial.copy()
    bad[4] = 2.5  # constant
    bad[5, 0, 0] = np.nan
    bad[6] = np.inf
    with pytest.warns(UserWarning, match="Dropped 3 of 30 artificial kernels"):
        result = sim.kernel_similarity(neural, bad)
    assert result.sizes["artificial"] == 27
    assert not np.isin([4, 5, 6], result["artificial_index"].values).any()
    assert np.isfinite(result["one_minus_rmse"].values).all()
    # the kept pairs are unchanged
    clean = sim.kernel_similarity(neural, artificial)
    np.testing.assert_allclose(
        result["one_minus_rmse"].values,
        clean["one_minus_rmse"].sel(artificial=result["artificial_index"].values).values,
    )


def test_resizing_that_flattens_a_kernel_drops_it():
    stripes = (np.indices((8, 8))[1] % 2).astype(float)[None]  # vertical stripes average away along x
    with pytest.warns(UserWarning, match="Dropped 1 of 1"):
        flat, kept = sim.prepare_kernels(stripes, (8, 1))
    assert flat.shape == (0, 8) and kept.size == 0


def test_prepared_kernels_are_zscored(kernels):
    neural, _ = kernels
    flat, _ = sim.prepare_kernels(neural, 9)
    np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose((flat**2).mean(axis=1), 1, atol=1e-12)


def test_aggregation_recovers_group_means_and_planted_order():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 10, 10))
    # model "close" = noisy copies of the neural kernels, model "far" = unrelated noise
    close = base[:20] + 0.3 * rng.normal(size=(20, 10, 10))
    far = rng.normal(size=(20, 10, 10))
    neural = xr.DataArray(base, dims=("kernel", "y", "x"), coords={"area": ("kernel", ["VISp"] * 20 + ["VISl"] * 20)})
    artificial = xr.DataArray(
        np.concatenate([close, far]),
        dims=("kernel", "y", "x"),
        coords={"model": ("kernel", ["close"] * 20 + ["far"] * 20)},
    )
    table = sim.kernel_similarity(neural, artificial)
    summary = sim.aggregate_similarity(table, ["area", "model"], n_bootstrap=200)
    assert len(summary) == 4
    manual = table["one_minus_rmse"].where(table["model"] == "close").where(table["area"] == "VISp").mean().item()
    row = summary[(summary["area"] == "VISp") & (summary["model"] == "close")].iloc[0]
    np.testing.assert_allclose(row["value"], manual)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    # VISp neural kernels have copies in "close": higher than their match with "far"
    far_row = summary[(summary["area"] == "VISp") & (summary["model"] == "far")].iloc[0]
    assert row["ci_low"] > far_row["ci_high"]
    medians = sim.aggregate_similarity(table, [], statistic="median", n_bootstrap=50)
    assert len(medians) == 1 and medians["n_neural"].item() == 40
    with pytest.raises(ValueError, match="'by' has unknown"):
        sim.aggregate_similarity(table, ["genotype"])
    with pytest.raises(ValueError, match="statistic"):
        sim.aggregate_similarity(table, ["area"], statistic="max")


def test_phase_randomisation_preserves_power_spectrum(kernels):
    neural, _ = kernels
    surrogates = sim.phase_randomize(neural, n_surrogates=3, random_state=1)
    assert surrogates.shape == (36, 16, 16)
    original_power = np.abs(np.fft.fft2(neural.values)) ** 2
    for s in range(3):
        block = surrogates[s * 12 : (s + 1) * 12]
        np.testing.assert_allclose(np.abs(np.fft.fft2(block)) ** 2, original_power, rtol=1e-8, atol=1e-8)
        # the spatial arrangement is destroyed: surrogates are nearly uncorrelated with their originals
        r = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(neural.values, block)]
        assert np.abs(np.mean(r)) < 0.2
    np.testing.assert_array_equal(surrogates, sim.phase_randomize(neural, n_surrogates=3, random_state=1))


def test_permutation_test_detects_planted_shift_and_not_null():
    rng = np.random.default_rng(5)
    shifted = sim.permutation_test(rng.normal(0.5, 1, 200), rng.normal(0, 1, 200), n_permutations=2000)
    assert shifted["p_value"] < 0.01 and shifted["difference"] > 0
    same = sim.permutation_test(rng.normal(0, 1, 200), rng.normal(0, 1, 200), n_permutations=2000)
    assert same["p_value"] > 0.01
    with pytest.raises(ValueError, match="alternative"):
        sim.permutation_test([1.0], [2.0], alternative="bigger")


def test_invalid_inputs():
    with pytest.raises(ValueError, match="'neural'"):
        sim.kernel_similarity(np.zeros((3, 4)), np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="chunk_size"):
        sim.kernel_similarity(np.ones((2, 4, 4)), np.ones((2, 4, 4)), chunk_size=0)
    with pytest.raises(ValueError, match="dtype"):
        sim.kernel_similarity(np.ones((2, 4, 4)), np.ones((2, 4, 4)), dtype="float16")


# ------------------------------------------------------------------------------ device
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_cpu_device_is_bit_identical_to_the_call_without_device(kernels, dtype, device):
    neural, artificial = kernels
    reference = sim.kernel_similarity(neural, artificial, chunk_size=7, dtype=dtype)
    result = sim.kernel_similarity(neural, artificial, chunk_size=7, dtype=dtype, device=device)
    for name in ("one_minus_rmse", "pearson_r"):
        assert result[name].dtype == reference[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(result[name].values, reference[name].values)
    flat_n, _ = sim.prepare_kernels(neural, 16)
    flat_a, _ = sim.prepare_kernels(artificial, 16)
    for (columns, block), (expected_columns, expected) in zip(
        sim.iter_similarity_blocks(flat_n, flat_a, chunk_size=7, dtype=dtype, device=device),
        sim.iter_similarity_blocks(flat_n, flat_a, chunk_size=7, dtype=dtype),
    ):
        assert columns == expected_columns and isinstance(block, np.ndarray)
        np.testing.assert_array_equal(block, expected)


class _RecordDevices(TorchFunctionMode):
    """Records the devices of the tensors given to every matrix product."""

    def __init__(self):
        super().__init__()
        self.products = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("matmul", "__matmul__"):
            self.products.append({a.device for a in args if torch.is_tensor(a)})
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_products_run_on_the_chosen_device(kernels, device):
    neural, artificial = kernels
    with _RecordDevices() as recorder:
        result = sim.kernel_similarity(neural, artificial, chunk_size=7, device=device)
    expected = {torch.device("cpu")} if device == "cpu" else {sim._product_device("auto", "float64")}
    assert len(recorder.products) == 5  # ceil(30 / 7) blocks: the neural kernels and one block each
    assert all(found == expected for found in recorder.products)
    assert isinstance(result["pearson_r"].values, np.ndarray)


def test_bad_device_is_refused_before_any_work(kernels, monkeypatch):
    neural, artificial = kernels
    calls = []
    monkeypatch.setattr(sim, "prepare_kernels", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(pipeline, "phase_randomize", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match=r"'device' must be 'auto' .*'cpu', 'cuda', 'cuda:<index>' or 'mps'; 'gpu'"):
        sim.kernel_similarity(neural, artificial, device="gpu")
    with pytest.raises(ValueError, match=r"'device' must be"):
        pipeline.alignment_summary(neural, artificial, {"model": ["model"]}, device="tpu")
    with pytest.raises(ValueError, match=r"'device' must be"):
        sim.iter_similarity_blocks(np.zeros((2, 4)), np.zeros((3, 4)), device=3)  # at the call, not at the first block
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"'device'='cuda'.*torch.cuda.is_available\(\) is False"):
            sim.kernel_similarity(neural, artificial, device="cuda")
    assert calls == []


def test_float64_stays_off_apple_mps(kernels, monkeypatch):
    neural, artificial = kernels
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert sim._product_device("auto", "float32") == torch.device("mps")
    assert sim._product_device("auto", "float64") == torch.device("cpu")  # MPS has no float64
    with pytest.raises(ValueError, match=r"'device'='mps' cannot run dtype='float64'.*dtype='float32'"):
        sim.kernel_similarity(neural, artificial, device="mps")
    # 'auto' on a Mac runs the default float64 product on the CPU, unchanged
    np.testing.assert_array_equal(
        sim.kernel_similarity(neural, artificial, device="auto")["pearson_r"].values,
        sim.kernel_similarity(neural, artificial, device="cpu")["pearson_r"].values,
    )
