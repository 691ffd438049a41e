"""Devices: 'auto' resolves CUDA → MPS → CPU, bad requests are named, models and batches land on the device.

This machine has no GPU: the CUDA and MPS answers of torch are mocked to check the resolution order
and the precision rules; everything that runs does so with device='cpu' (or 'auto', which is the CPU here).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from neuroalign_utils import chapters, devices
from neuroalign_utils.factortopy import features
from neuroalign_utils.factortopy import model as ft_model
from neuroalign_utils.factortopy import training as ft_training
from neuroalign_utils.kernels import artificial
from neuroalign_utils.v1t import findings, loading, models, pipeline, synthetic, training
from neuroalign_utils.v1t.attention import _fused_attention, attention
from neuroalign_utils.v1t.cores import CNNCore, V1TCore

TINY = dict(mice=("A",), n_neurons=6, n_trials=40, n_test_images=4, n_repeats=3)


@pytest.fixture
def machine(monkeypatch):
    """Pretend this machine has the given accelerators (CUDA devices, MPS, bfloat16 support)."""

    def set_up(*, cuda: int = 0, mps: bool = False, bf16: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Mock GPU")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(devices, "configure_cuda", lambda: None)  # no real CUDA switches to set here

    return set_up


# ------------------------------------------------------------------------------ resolution
@pytest.mark.parametrize(
    "cuda, mps, expected", [(1, True, "cuda:0"), (2, False, "cuda:0"), (0, True, "mps"), (0, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert devices.resolve_device("auto") == torch.device(expected)
    assert devices.resolve_device(" AUTO ") == torch.device(expected)


def test_auto_is_the_cpu_on_this_machine():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert devices.resolve_device() == torch.device("cpu")
    assert devices.resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_explicit_devices_are_checked_against_the_machine(machine):
    machine(cuda=2)
    assert devices.resolve_device("cuda") == torch.device("cuda", 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'device'='cuda:2'.*has 2"):
        devices.resolve_device("cuda:2")
    with pytest.raises(ValueError, match=r"'device'='mps'.*MPS.*not available"):
        devices.resolve_device("mps")
    machine(cuda=0)
    with pytest.raises(ValueError, match=r"'device'='cuda'.*torch.cuda.is_available\(\) is False.*'auto'.*'cpu'"):
        devices.resolve_device("cuda")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "", 3, None, "cuda:x"])
def test_unknown_devices_name_the_parameter_and_the_accepted_values(bad):
    with pytest.raises(ValueError, match=r"'backbone_device' must be 'auto' .*'cpu', 'cuda', 'cuda:<index>' or 'mps'"):
        devices.resolve_device(bad, name="backbone_device")


def test_configure_cuda_sets_every_switch_explicitly():
    names = [
        (torch.backends.cuda.matmul, "allow_tf32"),
        (torch.backends.cudnn, "allow_tf32"),
        (torch.backends.cudnn, "benchmark"),
        (torch.backends.cudnn, "deterministic"),
    ]
    before = [getattr(obj, attr) for obj, attr in names]
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        devices.configure_cuda()
        assert [getattr(obj, attr) for obj, attr in names] == [False, False, True, False]
    finally:
        for (obj, attr), value in zip(names, before):
            setattr(obj, attr, value)


def test_fork_rng_restores_the_cpu_generator():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with devices.fork_rng(torch.device("cpu")):
        torch.manual_seed(99)
        torch.rand(10)
    torch.testing.assert_close(torch.rand(3), expected)


def test_describe_device_names_where_a_run_ran(machine):
    machine(cuda=1)
    assert devices.describe_device(torch.device("cpu")) == "the CPU"
    assert devices.describe_device(torch.device("cuda", 0)) == "a CUDA GPU (Mock GPU)"
    assert devices.describe_device(torch.device("mps")) == "Apple's MPS GPU"


# ------------------------------------------------------------------------------ precision
def test_precision_auto_follows_the_device(machine):
    v1t, cnn = V1TCore(emb_dim=8, n_blocks=1, mlp_dim=8), CNNCore(channels=4, n_layers=2)
    machine(cuda=1, bf16=True)
    assert training.resolve_precision("auto", v1t, "cuda") == "bfloat16"
    assert training.resolve_precision("auto", cnn, "cuda") == "float32"  # the CNN stays float32 everywhere
    assert training.resolve_precision("float32", v1t, "cuda") == "float32"
    machine(cuda=1, bf16=False)
    assert training.resolve_precision("auto", v1t, "cuda") == "float16"
    assert training.resolve_precision("float16", cnn, "cuda") == "float16"
    with pytest.raises(ValueError, match=r"'precision'='bfloat16' is not supported by this GPU \(Mock GPU\)"):
        training.resolve_precision("bfloat16", v1t, "cuda")
    machine(cuda=0, mps=True)
    assert training.resolve_precision("auto", v1t, "mps") == "float32"
    with pytest.raises(ValueError, match=r"'precision'='float16' needs a CUDA GPU"):
        training.resolve_precision("float16", v1t, "mps")


def test_precision_on_the_cpu_is_unchanged():
    v1t = V1TCore(emb_dim=8, n_blocks=1, mlp_dim=8)
    assert training.resolve_precision("auto", v1t) == training.resolve_precision("auto", v1t, "cpu") == "float32"
    assert training.resolve_precision("bfloat16", v1t, "cpu") == "bfloat16"
    with pytest.raises(ValueError, match=r"'precision'='float16' needs a CUDA GPU.*'auto', 'float32' or 'bfloat16'"):
        training.resolve_precision("float16", v1t, "cpu")
    with pytest.raises(ValueError, match=r"'precision' must be one of"):
        training.resolve_precision("half", v1t, "cpu")


def test_precision_sentence_names_the_device():
    cpu = findings.describe_precision({"v1t": "float32", "cnn": "float32"}, device="the CPU")
    gpu = findings.describe_precision(pd.Series({"v1t": "float16", "cnn": "float32"}), device="a CUDA GPU (T4)")
    assert cpu == "This run trained every model in float32 on the CPU."
    assert gpu.startswith("This run trained V1T in float16 mixed precision") and "loss scaling" in gpu
    assert gpu.endswith("and the CNN in float32, on a CUDA GPU (T4).")


# ------------------------------------------------------------------------------ V1T on a device
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return loading.load_sensorium(synthetic.write_synthetic_sensorium(tmp_path_factory.mktemp("devices"), **TINY))


def _tiny_v1t(data):
    config = pipeline.model_config("v1t", True, data, dict(emb_dim=8, n_blocks=1, n_heads=2, mlp_dim=8))
    return models.build_encoder(config, {k: m.coordinates for k, m in data.items()})


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_v1t_model_and_batches_are_on_the_chosen_device(tiny_data, device, tmp_path):
    torch.manual_seed(0)
    model = _tiny_v1t(tiny_data)
    seen = []
    model.core.register_forward_pre_hook(
        lambda module, args: seen.append({a.device for a in args if torch.is_tensor(a)})
    )
    history = training.train(
        model, tiny_data, max_epochs=1, batch_size=8, progress=False, device=device, checkpoint_dir=tmp_path
    )
    expected = devices.resolve_device(device)
    assert {p.device for p in model.parameters()} == {expected}
    assert seen and all(found == {expected} for found in seen)  # every training and validation batch
    assert set(history["device"]) == {expected.type}
    saved = training.save_model(model, tmp_path / "model.pt")
    loaded = training.load_model(saved, device=device)
    assert {p.device for p in loaded.parameters()} == {expected}
    ((name, mouse),) = tiny_data.items()
    np.testing.assert_array_equal(training.predict(loaded, mouse), training.predict(model, mouse))


def test_v1t_training_refuses_a_missing_device_before_any_work(tiny_data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = _tiny_v1t(tiny_data)
    with pytest.raises(ValueError, match=r"'device'='cuda'"):
        training.train(model, tiny_data, max_epochs=1, device="cuda", checkpoint_dir=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # nothing written
    with pytest.raises(ValueError, match=r"'device' must be"):
        pipeline.load_run(tmp_path, device="gpu")


@pytest.mark.parametrize("head_dim", [12, 155])
def test_fused_attention_route_equals_the_explicit_softmax(head_dim):
    # the GPU route (heads padded to a multiple of 8, scale of the true width), run here on the CPU
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, head_dim) for _ in range(3))
    expected = torch.softmax(q @ k.transpose(-2, -1) / head_dim**0.5, dim=-1) @ v
    torch.testing.assert_close(_fused_attention(q, k, v, 0.0), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention(q, k, v)[0], expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ FactorTopy on a device
def test_factortopy_features_and_training_run_on_the_chosen_device(tmp_path):
    rng = np.random.default_rng(0)
    n_images, n_layers, n_channels = 40, 2, 6
    feats = {
        "local": rng.standard_normal((n_images, n_layers, n_channels, 8, 8)).astype(np.float16),
        "global": rng.standard_normal((n_images, n_layers, n_channels)).astype(np.float16),
    }
    coords = ft_model.hemisphere_separated_coordinates(rng.standard_normal((20, 3)), np.repeat(["lh", "rh"], 10))
    responses = rng.standard_normal((n_images, 20)).astype(np.float32)
    # on the CPU the cache stays memory-mapped: nothing is copied, batches are read from it
    local, global_, targets = ft_training.resident((feats["local"], feats["global"], responses), torch.device("cpu"))
    assert local is feats["local"] and targets is responses
    rows = np.array([3, 7, 8])
    from_array = ft_training.take_rows(feats["local"], rows, torch.device("cpu"))
    from_tensor = ft_training.take_rows(torch.from_numpy(feats["local"]), rows, torch.device("cpu"))
    assert from_array.dtype == torch.float32 and torch.equal(from_array, from_tensor)
    result = ft_training.train_factortopy(
        feats,
        responses,
        coords,
        n_steps=4,
        eval_every=2,
        bottleneck=4,
        progress=False,
        device="auto",
        checkpoint=tmp_path / "ft.pt",
    )
    assert {p.device for p in result.model.parameters()} == {devices.resolve_device("auto")}
    assert torch.load(tmp_path / "ft.pt")["state"]["readout_bias"].device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"'device' must be"):
        ft_training.train_factortopy(feats, responses, coords, n_steps=1, device="gpu")


def test_backbone_is_built_on_the_chosen_device():
    spec = features.BackboneSpec(config=dict(num_hidden_layers=1))
    backbone = features.build_backbone(spec, device="cpu")
    assert {p.device for p in backbone.parameters()} == {torch.device("cpu")}
    local, global_ = features.extract_features(backbone, "vit", np.random.default_rng(0).random((2, 32, 32, 3)))
    assert local.shape == (2, 1, 64, 8, 8) and global_.shape == (2, 1, 64)
    with pytest.raises(ValueError, match=r"'device' must be"):
        features.cached_features(spec, np.zeros((2, 32, 32, 3), np.float32), device="gpu")


def test_zoo_refuses_a_bad_device_before_building():
    with pytest.raises(ValueError, match=r"'device' must be"):
        artificial.artificial_kernels(images=None, device="tpu")


# ------------------------------------------------------------------------------ chapters
@pytest.mark.parametrize(
    "chapter",
    ["artificial_kernels", "kernel_alignment", "v1t_training", "v1t_analysis", "factortopy_encoding", "synthesis"],
)
def test_every_torch_chapter_takes_device_auto(chapter):
    assert chapters.get_chapter(chapter).defaults()["device"] == "auto"
    devices.resolve_device(chapters.get_chapter(chapter).defaults()["device"])


# ------------------------------------------------------------------------------ benchmarks/gpu.py
def _gpu_benchmark():
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_says_when_there_is_no_accelerator(capsys):
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    benchmark = _gpu_benchmark()
    assert benchmark.main([]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no accelerator on this machine" in err
    assert benchmark.main(["--device", "cuda"]) == 2
    assert "'--device'='cuda'" in capsys.readouterr().err


def test_gpu_benchmark_cpu_path_prints_one_figure_per_line(capsys):
    benchmark = _gpu_benchmark()
    assert (
        benchmark.main(
            ["--device", "cpu", "--quick", "--steps", "1", "--cpu-steps", "1", "--cases", "v1t_stride8,factortopy"]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 12
    for line in lines:
        name, value, unit = re.fullmatch(r"(\w+): ([\d.]+) (\S+)", line).groups()
        assert float(value) >= 0 and unit in ("samples/s", "GiB", "bool", "x")
    assert {line.split(":")[0] for line in lines} >= {"v1t_stride8_speedup_vs_cpu", "factortopy_device_peak_memory"}
