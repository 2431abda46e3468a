import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import entropy


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.integers(0, 2**31 - 1))
def test_symbols_round_trip_with_escapes(codec, seed, n, outlier):
    rng = np.random.default_rng(seed)
    tables = codec.weights.y_tables
    models = entropy.TableModels(tables)
    cells = rng.integers(0, tables.cells, n)
    values = np.rint(rng.laplace(0, 3, n)).astype(np.int64)
    values[rng.integers(0, n)] = outlier * (1 if seed % 2 else -1)  # far outside any table
    enc = entropy.new_encoder()
    entropy.encode_symbols(enc, values, cells, models)
    payload = entropy.finish(enc)
    out = entropy.decode_symbols(entropy.new_decoder(payload), cells, models)
    assert np.array_equal(out, values)


def test_coding_cost_tracks_the_model(codec):
    """Symbols drawn from a table's own distribution cost about its entropy."""
    tables = codec.weights.y_tables
    models = entropy.TableModels(tables)
    cell = tables.cells // 2
    p = tables.row(cell).astype(np.float64)
    p /= p.sum()
    half = int(tables.half_width[cell])
    rng = np.random.default_rng(0)
    symbols = rng.choice(p.size - 1, size=20000, p=p[:-1] / p[:-1].sum())
    values = symbols - half
    enc = entropy.new_encoder()
    entropy.encode_symbols(enc, values, np.full(values.size, cell), models)
    bits = len(entropy.finish(enc)) * 8
    ideal = -(np.log2(p[symbols])).sum()
    assert bits < ideal * 1.02 + 64
