import numpy as np
import torch

from codec import ggm


def _params(sigma: float, beta: float):
    log_sigma = torch.tensor([np.log(sigma)], dtype=torch.float64)
    logit = torch.logit(torch.tensor([(beta - ggm.BETA_MIN) / (ggm.BETA_MAX - ggm.BETA_MIN)], dtype=torch.float64))
    return ggm.bound_params(log_sigma, logit)


def test_likelihoods_of_all_integers_sum_to_one():
    r = torch.arange(-2000, 2001, dtype=torch.float64)
    for sigma, beta in [(0.3, 0.8), (1.0, 1.0), (3.0, 2.0), (50.0, 3.0)]:
        s, b = _params(sigma, beta)
        total = ggm.likelihood(r, s, b).sum().item()
        assert abs(total - 1) < 1e-5, (sigma, beta, total)


def test_beta_two_is_a_gaussian():
    from scipy.stats import norm

    s, b = _params(2.0, 2.0)
    r = torch.arange(-6, 7, dtype=torch.float64)
    ours = ggm.likelihood(r, s, b).numpy()
    std = 2.0 / np.sqrt(2)  # exp(-(y/sigma)^2) = Gaussian with std sigma/sqrt(2)
    ref = norm.cdf(r.numpy() + 0.5, scale=std) - norm.cdf(r.numpy() - 0.5, scale=std)
    assert np.allclose(ours, ref, atol=1e-7)


def test_gradients_are_finite_and_match_finite_differences():
    torch.manual_seed(0)
    residual = (torch.randn(200, dtype=torch.float64) * 3).requires_grad_()
    log_sigma = torch.randn(200, dtype=torch.float64).requires_grad_()
    logit = torch.randn(200, dtype=torch.float64).requires_grad_()
    s, b = ggm.bound_params(log_sigma, logit)
    (-torch.log2(ggm.likelihood(residual, s, b))).sum().backward()
    for g in (residual.grad, log_sigma.grad, logit.grad):
        assert torch.isfinite(g).all()
    # d/d(beta logit) against a numerical derivative of the whole likelihood
    i = 3
    eps = 1e-5

    def bits(delta):
        lg = logit.detach().clone()
        lg[i] += delta
        s2, b2 = ggm.bound_params(log_sigma.detach(), lg)
        return -torch.log2(ggm.likelihood(residual.detach(), s2, b2))[i].item()

    numeric = (bits(eps) - bits(-eps)) / (2 * eps)
    assert abs(numeric - logit.grad[i].item()) < 1e-3 * max(1.0, abs(numeric))


def test_zero_residual_at_small_beta_has_finite_gradient():
    residual = torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64, requires_grad=True)
    s, b = _params(0.5, 0.5)
    s, b = s.expand(3), b.expand(3)
    ggm.likelihood(residual, s, b).log().sum().backward()
    assert torch.isfinite(residual.grad).all()


def test_stored_tables_are_normalized_and_cover_the_grid(codec):
    t = codec.weights.y_tables
    assert t.cells == codec.weights.sigma_levels.size * codec.weights.beta_levels.size
    sums = np.add.reduceat(t.probs.astype(np.float64), t.offsets[:-1])
    assert np.allclose(sums, 1.0, atol=1e-4)
    assert (t.half_width >= 1).all()
