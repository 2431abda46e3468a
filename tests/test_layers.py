"""GDN has two layouts (channels-last for the encoder and training, contiguous for the
thread-invariant decoder); both must compute the same function, forward and inverse."""

import pytest
import torch

from codec.layers import GDN


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_channels_last_matches_contiguous(inverse):
    torch.manual_seed(0)
    gdn = GDN(8, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(torch.rand(8, 8) * 0.2)
        gdn.beta.mul_(1.5)
    x = torch.randn(2, 8, 5, 7)
    reference = gdn(x)
    fast = gdn(x.contiguous(memory_format=torch.channels_last))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(reference, x)  # the normalisation did something
