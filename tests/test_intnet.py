"""The determinism guarantee: the float64 path of the integer hyper-synthesis equals the int64
reference bit for bit, and the trained (fake-quantized) h_s computes what the runtime computes."""

import numpy as np
import torch

from codec.intnet import IntLayer, check_exact_bounds, reference_forward, run_float64, OUT_FRAC


def test_float64_path_equals_int64_reference(codec):
    rng = np.random.default_rng(0)
    layers = codec.weights.hs_layers
    check_exact_bounds(layers)
    n = codec.weights.config.n
    for scale in (2, 8, 40000):  # typical values, and huge ones that hit the input clamp
        z = rng.integers(-scale, scale + 1, size=(1, n, 3, 4))
        assert np.array_equal(run_float64(layers, z), reference_forward(layers, z))


def test_thread_count_does_not_change_integer_outputs(codec):
    z = np.random.default_rng(1).integers(-6, 7, size=(1, codec.weights.config.n, 4, 5))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = run_float64(codec.weights.hs_layers, z)
        torch.set_num_threads(2)
        b = run_float64(codec.weights.hs_layers, z)
    finally:
        torch.set_num_threads(old)
    assert np.array_equal(a, b)


def test_quantization_aware_h_s_matches_integer_runtime():
    """The training-time fake quantization computes the runtime's integers (up to rare 1-LSB
    float32 rounding differences), so the model that was trained is the model that codes."""
    from codec.model import HyperSynthesis

    torch.manual_seed(0)
    hs = HyperSynthesis(16, 24).eval()
    layers = [IntLayer.from_arrays(layer.export()) for layer in hs.layers]
    z = torch.randint(-5, 6, (1, 16, 3, 3)).float()
    with torch.no_grad():
        fake = torch.cat(hs(z), dim=1).double().numpy() * 2**OUT_FRAC
    exact = run_float64(layers, z.numpy().astype(np.int64))
    diff = np.abs(fake - exact)
    assert diff.max() <= 2
    assert (diff == 0).mean() > 0.95


def test_threshold_bins_equal_searchsorted(codec):
    """The table cells come from a lookup table that must agree with searchsorted everywhere,
    including below, above and exactly on every threshold."""
    from codec.coder import ThresholdBins

    rng = np.random.default_rng(3)
    for thresholds in (codec.weights.sigma_thresholds, codec.weights.beta_thresholds):
        values = np.concatenate([thresholds, thresholds - 1, thresholds + 1, [-(2**24), 2**24],
                                 rng.integers(thresholds[0] - 50, thresholds[-1] + 50, 10_000)])
        assert np.array_equal(ThresholdBins(thresholds)(values), np.searchsorted(thresholds, values, side="right"))
