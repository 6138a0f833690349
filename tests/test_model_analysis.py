"""quantlib.model on small hand-built networks: layer listing, quantized copies, activations, drift, size."""

from __future__ import annotations

import threading

import pytest
import torch
from model_hash import state_hash
from torch import nn

from quantlib import QuantSpec, fake_quant, grid
from quantlib.model import (
    QuantizedLayer,
    capture_activations,
    layer_weight,
    list_layers,
    model_size_bytes,
    output_drift,
    quantize_model,
    quantize_weights,
    size_breakdown,
    weight_storage,
)


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(10, 8)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.deconv = nn.ConvTranspose2d(4, 2, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(self.deconv(self.conv(x)).mean(dim=(1,)).mean(dim=1)))


def mlp() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def test_list_layers_reports_kind_shape_count_and_channel_axis():
    rows = {i.name: i for i in list_layers(Mixed())}
    assert list(rows) == ["emb", "conv", "deconv", "fc"]  # the LayerNorm is not a quantizable layer
    assert rows["conv"].kind == "Conv2d" and rows["conv"].shape == (4, 1, 3, 3) and rows["conv"].numel == 36
    assert rows["deconv"].channel_axis == 1  # ConvTranspose weights are (in, out, kh, kw)
    assert rows["emb"].channel_axis == 0 and rows["emb"].kind == "Embedding"
    assert rows["fc"].as_dict()["shape"] == (3, 8)


def test_layer_weight_rejects_unknown_layer():
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        layer_weight(mlp(), "nope")


def test_quantize_weights_returns_new_model_and_leaves_input_untouched():
    net = mlp()
    before = state_hash(net)
    q = quantize_weights(net, QuantSpec(bits=3, granularity="channel"))
    assert q is not net
    assert state_hash(net) == before
    for name in ("0", "2"):
        w = layer_weight(net, name)
        expected = fake_quant(w, QuantSpec(bits=3, granularity="channel"))
        assert torch.equal(layer_weight(q, name), expected)
    assert torch.equal(q[0].bias, net[0].bias)  # biases stay float


def test_quantize_weights_only_touches_chosen_layers():
    net = mlp()
    q = quantize_weights(net, QuantSpec(bits=2), layers=["2"])
    assert torch.equal(q[0].weight, net[0].weight)
    assert not torch.equal(q[2].weight, net[2].weight)


def test_mixed_precision_mapping_uses_each_layers_own_spec():
    net = mlp()
    q = quantize_weights(net, {"0": QuantSpec(bits=8), "2": QuantSpec(bits=2)})
    assert torch.equal(q[0].weight, fake_quant(net[0].weight, QuantSpec(bits=8)))
    assert torch.equal(q[2].weight, fake_quant(net[2].weight, QuantSpec(bits=2)))
    assert torch.unique(q[2].weight).numel() <= 4


def test_unknown_layer_in_mapping_is_a_clear_error():
    with pytest.raises(ValueError, match="no quantizable layer named 'fc9'"):
        quantize_weights(mlp(), {"fc9": QuantSpec()})


def test_per_channel_uses_the_transposed_conv_output_axis():
    net = Mixed()
    q = quantize_weights(net, QuantSpec(bits=4, granularity="channel"), layers=["deconv"])
    expected = fake_quant(net.deconv.weight, QuantSpec(bits=4, granularity="channel", axis=1))
    assert torch.equal(q.deconv.weight, expected)


def test_per_group_on_conv_groups_the_flattened_input_dimension():
    net = Mixed()
    q = quantize_weights(net, QuantSpec(bits=4, granularity="group", group_size=9), layers=["conv"])
    w = net.conv.weight
    expected = fake_quant(w.reshape(4, 9), QuantSpec(bits=4, granularity="group", group_size=9)).reshape(w.shape)
    assert torch.equal(q.conv.weight, expected)


def test_group_size_that_does_not_divide_names_the_layer():
    with pytest.raises(ValueError, match="layer '0'.*group size 5"):
        quantize_weights(mlp(), QuantSpec(granularity="group", group_size=5))


def test_activation_only_quantization_keeps_weights_and_puts_outputs_on_the_grid():
    net = mlp()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    before = state_hash(net)
    q = quantize_model(net, act_spec=QuantSpec(bits=4, scheme="asymmetric"), calibration_inputs=x)
    assert state_hash(net) == before
    assert isinstance(q[0], QuantizedLayer) and isinstance(q[2], QuantizedLayer)
    assert torch.equal(q[0].layer.weight, net[0].weight)
    with torch.no_grad():
        out = q(x)
    qo = q[2].output_quant
    levels = grid(qo.spec, qo.qparams)
    assert torch.isin(out, levels).all()
    assert not torch.equal(out, net(x))


def test_full_quantization_quantizes_weights_and_activations():
    net = mlp()
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3))
    q = quantize_model(net, weight_spec=QuantSpec(bits=4), act_spec=QuantSpec(bits=8), calibration_inputs=x)
    assert torch.equal(q[0].layer.weight, fake_quant(net[0].weight, QuantSpec(bits=4)))
    assert q[0].input_quant is not None
    with torch.no_grad():
        drift = output_drift(net(x), q(x))
    assert 5 < drift.sqnr_db < 40


def test_activation_ranges_use_the_calibration_method():
    net = mlp()
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(4))
    x[0, 0] = 40.0  # one outlier: percentile calibration should clip it, min-max should not
    mm = quantize_model(net, act_spec=QuantSpec(bits=8), calibration_inputs=x, layers=["0"])
    pc = quantize_model(
        net, act_spec=QuantSpec(bits=8, calibration="percentile", percentile=99.9), calibration_inputs=x, layers=["0"]
    )
    assert float(pc[0].input_quant.qparams.scale) < float(mm[0].input_quant.qparams.scale) / 5
    assert float(mm[0].input_quant.qparams.scale) == pytest.approx(40.0 / 127)


def test_quantize_model_needs_something_to_do_and_calibration_data():
    with pytest.raises(ValueError, match="nothing to quantize"):
        quantize_model(mlp())
    with pytest.raises(ValueError, match="calibration_inputs"):
        quantize_model(mlp(), act_spec=QuantSpec())


def test_embedding_inputs_are_ids_and_are_not_quantized():
    class Rec(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(20, 4)
            self.fc = nn.Linear(4, 1)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.fc(self.emb(ids)).squeeze(-1)

    torch.manual_seed(5)
    net = Rec().eval()
    ids = torch.arange(20)
    q = quantize_model(net, weight_spec=QuantSpec(bits=8), act_spec=QuantSpec(bits=8), calibration_inputs=ids)
    assert q.emb.input_quant is None  # integer ids carry no range
    with torch.no_grad():
        assert output_drift(net(ids), q(ids)).sqnr_db > 25


def test_capture_activations_returns_layer_inputs_without_hooking_the_model():
    net = mlp()
    x = torch.randn(8, 16)
    acts = capture_activations(net, "2", x)
    with torch.no_grad():
        expected = torch.relu(net[0](x))
    assert torch.allclose(acts, expected)
    assert all(not m._forward_hooks for m in net.modules())
    out = capture_activations(net, "2", x, which="output")
    assert out.shape == (8, 4)


def test_output_drift_known_values_and_classifier_figures():
    ref = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    qua = torch.tensor([[2.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    d = output_drift(ref, qua, classifier=True)
    assert d.mse == pytest.approx((0.25 + 1 + 1) / 6)
    assert d.max_abs_error == 1.0
    assert d.top1_agreement == 0.5
    assert d.per_example_cosine is not None and d.per_example_cosine[1] == pytest.approx(0.0)
    assert d.min_cosine == pytest.approx(0.0)
    p = torch.softmax(ref, 1)
    kl = (p * (torch.log_softmax(ref, 1) - torch.log_softmax(qua, 1))).sum(1).mean()
    assert d.kl_divergence == pytest.approx(float(kl))
    assert set(d.as_dict()) >= {"mse", "sqnr_db", "mean_cosine", "top1_agreement", "kl_divergence"}


def test_output_drift_of_identical_outputs_is_perfect():
    y = torch.randn(10, 5)
    d = output_drift(y, y.clone())
    assert d.mse == 0 and d.sqnr_db == float("inf") and d.mean_cosine == pytest.approx(1.0)
    assert d.top1_agreement is None


def test_output_drift_scalar_outputs_have_no_per_example_cosine():
    d = output_drift(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.5]))
    assert d.per_example_cosine is None and len(d.per_example_mse) == 3
    assert d.per_example_mse[2] == pytest.approx(0.25)


def test_output_drift_rejects_mismatched_or_non_finite_outputs():
    with pytest.raises(ValueError, match="shape"):
        output_drift(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="NaN"):
        output_drift(torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0]))


def test_model_size_matches_hand_computed_bytes_with_overhead():
    net = mlp()  # 16*32 + 32 + 32*4 + 4 = 676 parameters
    assert model_size_bytes(net) == 676 * 4
    # int4 per-tensor symmetric: weights packed at 4 bits + one fp32 scale each; biases stay fp32
    assert model_size_bytes(net, QuantSpec(bits=4)) == (512 // 2 + 4) + (128 // 2 + 4) + 36 * 4
    # int8 per-channel asymmetric: a scale (4 B) and a zero point (1 B) per output channel
    assert model_size_bytes(net, QuantSpec(bits=8, scheme="asymmetric", granularity="channel")) == (
        (512 + 32 * 5) + (128 + 4 * 5) + 36 * 4
    )
    # int3 per-group of 8: ceil(numel * 3 / 8) bytes + one scale per group
    assert model_size_bytes(net, QuantSpec(bits=3, granularity="group", group_size=8)) == (
        (192 + 64 * 4) + (48 + 16 * 4) + 36 * 4
    )


def test_weight_storage_of_nf4_and_fp8():
    info = list_layers(mlp())[0]
    assert weight_storage(QuantSpec(format="nf4", granularity="group", group_size=64), info) == (256, 8 * 4)
    assert weight_storage(QuantSpec(format="fp8_e4m3"), info) == (512, 4)


def test_size_breakdown_lists_every_parameter():
    rows = size_breakdown(mlp(), QuantSpec(bits=4), layers=["0"])
    by = {r["name"]: r for r in rows}
    assert set(by) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert by["0.weight"]["bits"] == 4 and by["2.weight"]["bits"] == 32


def test_two_threads_quantizing_one_shared_model_get_independent_results():
    net = mlp()
    before = state_hash(net)
    specs = [QuantSpec(bits=2), QuantSpec(bits=8, scheme="asymmetric", granularity="channel")]
    expected = [state_hash(quantize_weights(net, s)) for s in specs]
    results: dict[int, list[str]] = {0: [], 1: []}
    x = torch.randn(32, 16)

    def work(i: int) -> None:
        for _ in range(20):
            results[i].append(state_hash(quantize_weights(net, specs[i])))
            quantize_model(net, weight_spec=specs[i], act_spec=specs[i], calibration_inputs=x)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(h == expected[0] for h in results[0])
    assert all(h == expected[1] for h in results[1])
    assert state_hash(net) == before


def test_a_bare_layer_as_the_whole_model_can_be_activation_quantized():
    torch.manual_seed(6)
    net = nn.Linear(10, 1).eval()
    x = torch.randn(32, 10)
    assert [i.name for i in list_layers(net)] == [""]
    q = quantize_model(net, weight_spec=QuantSpec(bits=8), act_spec=QuantSpec(bits=8), calibration_inputs=x)
    assert isinstance(q, QuantizedLayer) and q.layer is not net
    with torch.no_grad():
        assert output_drift(net(x), q(x)).sqnr_db > 25
