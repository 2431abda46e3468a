"""The ROI benchmark's trade-off curve: the envelope of (ROI q, background q) points."""

import math

from bench.roi import at_rate, upper_envelope


def test_envelope_keeps_only_points_no_cheaper_point_beats():
    points = [(0.30, 31.0, 24.0), (0.10, 27.0, 22.0), (0.20, 26.5, 25.0), (0.25, 29.0, 23.0), (0.40, 30.5, 26.0)]
    assert upper_envelope(points) == [(0.10, 27.0, 22.0), (0.25, 29.0, 23.0), (0.30, 31.0, 24.0)]


def test_rate_lookup_interpolates_inside_and_refuses_outside_the_curve():
    curve = [(0.1, 27.0, 22.0), (0.3, 31.0, 24.0)]
    assert at_rate(curve, 0.2) == (29.0, 23.0)
    assert all(math.isnan(v) for v in at_rate(curve, 0.05) + at_rate(curve, 0.35))
