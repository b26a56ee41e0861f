"""train/ against plain PyTorch (python/cytonet_torch.py): the losses and their gradients on
the same inputs, and the networks parameter for parameter and output for output, through
the weight files Python users load."""
import pathlib
import subprocess
import sys

import pytest
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
import cytonet_torch as ct  # noqa: E402


@pytest.fixture(scope="module")
def dumped(request, tmp_path_factory):
    build = pathlib.Path(request.config.getoption("--cytonet-bin")).resolve()
    tool = build / "tests" / "torch_oracle_dump"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: build the project first")
    out = tmp_path_factory.mktemp("oracle")
    subprocess.run([str(tool), str(out)], check=True, capture_output=True)
    return out


def test_losses_and_gradients_equal_torch(dumped):
    d = torch.load(dumped / "losses.pt")
    references = {
        "spatial_nce": lambda z: ct.spatial_nce_loss(z, d["positions"]),
        "nt_xent": lambda z: ct.nt_xent_loss(z, 0.1),
        "supcon": lambda z: ct.supervised_contrastive_loss(z, d["labels"], 0.1),
    }
    for name, loss in references.items():
        z = d["features"].clone().requires_grad_(True)
        value = loss(z)
        value.backward()
        assert torch.allclose(d[f"{name}.loss"], value.detach(), rtol=1e-6, atol=1e-6), name
        assert torch.allclose(d[f"{name}.grad"], z.grad, rtol=1e-5, atol=1e-6), name
        assert z.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name, config", [("small", ct.ResNetConfig.small()), ("resnet50", ct.ResNetConfig.resnet50())])
def test_networks_equal_torch_parameter_for_parameter(dumped, name, config):
    d = torch.load(dumped / f"{name}.pt")
    backbone, head = ct.CytoNetResNet(config), ct.ProjectionHead(4 * config.stage_widths[-1])
    for prefix, module in (("backbone.", backbone), ("head.", head)):
        ours = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        theirs = module.state_dict()
        assert sorted(ours) == sorted(theirs), prefix
        for key, value in theirs.items():
            assert ours[key].shape == value.shape, key
        module.load_state_dict(ours, strict=True)
        module.eval()
    count = sum(v.numel() for k, v in d.items() if k.startswith("backbone.") and "running" not in k
                and "num_batches" not in k)
    assert count == sum(p.numel() for p in backbone.parameters())
    if name == "resnet50":
        # torchvision's ResNet-50 without its classifier (23,508,032), with the CytoNet stem
        # (1×5×5×64 + 64×3×3×64 conv weights and one more BN) instead of its 3×7×7×64 conv.
        assert count == 23_508_032 - 3 * 7 * 7 * 64 + 5 * 5 * 64 + 9 * 64 * 64 + 2 * 64
    with torch.no_grad():
        feature_map = backbone(d["input"])
        features = backbone.features(d["input"])
        projection = head(features)
    assert torch.allclose(d["output.map"], feature_map, rtol=1e-4, atol=1e-4)
    assert torch.allclose(d["output.features"], features, rtol=1e-5, atol=1e-5)
    assert torch.allclose(d["output.projection"], projection, rtol=1e-5, atol=1e-5)


def test_exported_weights_load_with_torch_load(dumped):
    state = torch.load(dumped / "exported.pt")
    model = ct.CytoNetResNet(ct.ResNetConfig.small())
    model.load_state_dict({k[len("backbone."):]: v for k, v in state.items()}, strict=True)


@pytest.mark.parametrize("name, resnet, vit, side", [
    ("small_vit", ct.ResNetConfig.small(), ct.VitConfig.small(), 256),
    ("r50_vit", ct.ResNetConfig.resnet50(), ct.VitConfig.base(), 128)])
def test_the_hybrid_equals_torch_parameter_for_parameter(dumped, name, resnet, vit, side):
    d = torch.load(dumped / f"{name}.pt")
    backbone, head = ct.HybridBackbone(resnet, vit, side), ct.ProjectionHead(vit.dim)
    for prefix, module in (("backbone.", backbone), ("head.", head)):
        ours = {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
        assert sorted(ours) == sorted(module.state_dict()), prefix
        module.load_state_dict(ours, strict=True)
        module.eval()
    if name == "r50_vit":
        # ViT-B/16's encoder (85,798,656 parameters with its 16×16×3 patch embedding of 590,592 and
        # 197 position embeddings) on 2048 channels and 2×2 + 1 tokens here, on the R50 above.
        vit_params = sum(p.numel() for p in backbone.vit.parameters())
        assert vit_params == 85_798_656 - 590_592 - 197 * 768 + (2048 * 768 + 768) + 5 * 768
    with torch.no_grad():
        features = backbone.features(d["input"])
        projection = head(features)
    assert torch.allclose(d["output.features"], features, rtol=1e-4, atol=1e-4)
    assert torch.allclose(d["output.projection"], projection, rtol=1e-4, atol=1e-4)


def test_python_lars_is_the_formula_of_train_lars_h():
    """The Python twin the training benchmark runs: REFERENCE.md's LARC step, written out in
    float64 numpy, over three steps with decay, clipping on and off, and a zero parameter."""
    import numpy as np

    torch.manual_seed(3)
    for clip in (True, False):
        weight = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(6, dtype=torch.float64, requires_grad=True)  # ‖p‖ = 0: plain SGD
        optimiser = ct.Lars([weight], [bias], lr=0.1, weight_decay=1e-3, clip=clip)
        w, b = weight.detach().numpy().copy(), bias.detach().numpy().copy()
        w_buf = b_buf = None
        for step, lr in enumerate([0.1, 0.05, 0.2]):
            gw, gb = np.random.default_rng(step).normal(size=(6, 5)), np.random.default_rng(10 + step).normal(size=6)
            weight.grad, bias.grad = torch.from_numpy(gw.copy()), torch.from_numpy(gb.copy())
            for group in optimiser.param_groups:
                group["lr"] = lr
            optimiser.step()
            trust = 0.02 * np.linalg.norm(w) / (np.linalg.norm(gw) + 1e-3 * np.linalg.norm(w) + 1e-8)
            scale = min(trust / lr, 1.0) if clip else trust
            gw = scale * (gw + 1e-3 * w)
            w_buf = gw.copy() if w_buf is None else 0.9 * w_buf + gw
            b_buf = gb.copy() if b_buf is None else 0.9 * b_buf + gb
            w, b = w - lr * (gw + 0.9 * w_buf), b - lr * (gb + 0.9 * b_buf)
            np.testing.assert_allclose(weight.detach().numpy(), w, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(bias.detach().numpy(), b, rtol=1e-12, atol=1e-14)
