"""Frame-level rate control for `--target-kbps`.

The controller picks the background quality (and, only when the background at its floor still does
not fit, lowers the ROI qualities) for each frame so that the bitrate over time holds the target.

Rate model: bytes of a group ~= blocks * exp(a + b * q), one (a, b) for the background and one for
the ROI groups, fitted online by recursive least squares with forgetting on log(bytes / block)
from the frames actually coded. The learned codec's rate is close to log-linear in q (the gain
units interpolate exponentially between trained levels), so two parameters track it well; the
fit starts from a vague prior and needs no numbers from any particular weights file.

Budget: a leaky bucket. `debt` is the bytes sent minus the bytes the target allowed for the time
that passed (from frame timestamps, so it is a rate per second of video, or per second of wall
time for live sources that drop frames). A background refresh that has to cover `period` frames
gets the budget of the whole period minus the ROI groups' expected bytes over it, so with
`--bg-interval N` the background is coded once with N frames' worth of bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from codec.plan import FramePlan


class RateModel:
    """log(bytes per block) = a + b * q, fitted by recursive least squares with forgetting."""

    def __init__(self, a: float = 3.0, b: float = 2.5, forgetting: float = 0.9, b_range: tuple[float, float] = (0.3, 12.0)):
        self.theta = np.array([a, b], np.float64)
        self.P = np.diag([25.0, 4.0])
        self.forgetting, self.b_range = forgetting, b_range
        self.observations = 0

    @property
    def a(self) -> float:
        return float(self.theta[0])

    @property
    def b(self) -> float:
        return float(self.theta[1])

    def bytes_per_block(self, q: float) -> float:
        return math.exp(self.a + self.b * q)

    def predict(self, blocks: int, q: float) -> float:
        return blocks * self.bytes_per_block(q)

    def solve(self, blocks: int, budget: float) -> float:
        """q that codes `blocks` in `budget` bytes (unclamped; -inf for no budget)."""
        if blocks <= 0:
            return math.inf
        if budget <= 0:
            return -math.inf
        return (math.log(budget / blocks) - self.a) / self.b

    def update(self, blocks: int, q: float, nbytes: float) -> None:
        if blocks <= 0 or nbytes <= 0:
            return
        x = np.array([1.0, q])
        y = math.log(nbytes / blocks)
        px = self.P @ x
        gain = px / (self.forgetting + x @ px)
        self.theta = self.theta + gain * (y - x @ self.theta)
        self.P = (self.P - np.outer(gain, px)) / self.forgetting
        self.P = (self.P + self.P.T) / 2
        if np.trace(self.P) > 50.0:  # no wind-up while q does not move
            self.P *= 50.0 / np.trace(self.P)
        self.theta[1] = float(np.clip(self.theta[1], *self.b_range))
        self.observations += 1


@dataclass(frozen=True)
class RateDecision:
    qualities: dict[int, float]  # q per coded group of the frame
    bg_quality: float | None  # None when the frame carries no background
    roi_delta: float  # how much the ROI qualities were lowered (0 = as requested)
    budget_bytes: float
    predicted_bytes: float


@dataclass
class RateController:
    """Adapts qualities frame by frame to hold `target_kbps`.

    q_min: floor of the background quality; roi_q_min: floor of ROI qualities when they must drop;
    bg_q_max: ceiling of the background quality (default: the best ROI quality of the frame, so the
    background is never coded better than the objects); horizon: frames over which an over- or
    undershoot is paid back.
    """

    target_kbps: float
    q_min: float = 0.0
    roi_q_min: float = 0.2
    bg_q_max: float | None = None
    horizon: int = 4
    bg_model: RateModel = field(default_factory=RateModel)
    roi_model: RateModel = field(default_factory=RateModel)
    debt: float = 0.0  # bytes sent beyond the target so far
    overhead: float = 200.0  # bytes per frame outside the payloads (header, records), tracked
    last: RateDecision | None = None
    _bg_allowance: float = 0.0
    _period: int = 1

    def __post_init__(self) -> None:
        if self.target_kbps <= 0:
            raise ValueError("target kbps must be positive")

    @property
    def bytes_per_second(self) -> float:
        return self.target_kbps * 1000 / 8

    def _roi_bytes(self, plan: FramePlan, qualities: dict[int, float], delta: float) -> float:
        return sum(self.roi_model.predict(plan.groups[g].blocks, self._lowered(qualities[g], delta))
                   for g in plan.object_ids)

    def _lowered(self, q: float, delta: float) -> float:
        return q if delta <= 0 else max(min(q, self.roi_q_min), q - delta)

    def decide(self, plan: FramePlan, dt_s: float, period: int = 1) -> RateDecision:
        """The qualities for `plan`, a frame that covers `dt_s` seconds; `period` is how many
        frames the background sent with it must last (1 without background refresh)."""
        period = max(1, period)
        frame_target = self.bytes_per_second * max(dt_s, 1e-3)
        requested = plan.qualities()
        has_bg = plan.has_background
        roi_at_requested = self._roi_bytes(plan, requested, 0.0)
        horizon = max(1.0, self.horizon / period)
        bg_q = None
        if has_bg:
            budget = period * frame_target - self.debt / horizon
            bg_budget = budget - period * (roi_at_requested + self.overhead)
            ceiling = self.bg_q_max if self.bg_q_max is not None else max(
                [requested[g] for g in plan.object_ids] or [1.0])
            bg_q = float(np.clip(self.bg_model.solve(plan.groups[0].blocks, bg_budget), self.q_min, ceiling))
            roi_budget = (budget - self.bg_model.predict(plan.groups[0].blocks, bg_q)) / period - self.overhead
        else:  # the last background's bytes are paid back over its period: only debt beyond them counts
            budget = frame_target - max(self.debt - self._bg_allowance, 0.0) / self.horizon
            roi_budget = budget - self.overhead
        self._period = period
        delta = 0.0
        at_floor = bg_q is None or bg_q <= self.q_min + 1e-9  # the background gives way first
        if plan.object_ids and at_floor and roi_at_requested > 1.01 * roi_budget:
            lo, hi = 0.0, 1.0
            for _ in range(20):
                mid = (lo + hi) / 2
                if self._roi_bytes(plan, requested, mid) > roi_budget:
                    lo = mid
                else:
                    hi = mid
            delta = hi
        qualities = {g: self._lowered(requested[g], delta) for g in plan.object_ids}
        if bg_q is not None:
            qualities[0] = bg_q
        predicted = self._roi_bytes(plan, requested, delta) + self.overhead + (
            self.bg_model.predict(plan.groups[0].blocks, bg_q) if bg_q is not None else 0.0)
        self.last = RateDecision(qualities, bg_q, delta, budget, predicted)
        return self.last

    def update(self, plan: FramePlan, group_bytes: dict[int, int], frame_bytes: int, dt_s: float) -> None:
        """Feed back what the frame cost: payload bytes per coded group and the serialized size."""
        frame_target = self.bytes_per_second * max(dt_s, 1e-3)
        self.debt += frame_bytes - frame_target
        # bounded memory: an unreachable target must not starve the stream for minutes afterwards
        cap = 4 * frame_target * max(self.horizon, self._period)
        self.debt = float(np.clip(self.debt, -cap, cap))
        if 0 in group_bytes:
            self._bg_allowance = float(group_bytes[0]) if self._period > 1 else 0.0
        self.overhead = 0.8 * self.overhead + 0.2 * max(frame_bytes - sum(group_bytes.values()), 0)
        for gid, nbytes in group_bytes.items():
            info = plan.groups.get(gid)
            if info is None:
                continue
            (self.bg_model if gid == 0 else self.roi_model).update(info.blocks, info.quality, nbytes)
