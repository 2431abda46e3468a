"""The edge's one decision per frame: `FramePlanner.plan(frame, detections, dt_s) -> FramePlan`.

What a frame sends is decided here and nowhere else, in the order the parts depend on each other:
the ROI policy turns detections into groups, the background schedule says whether the background
is due, a background fill may send the blocks the cloud's composites lack, and rate control sets
the qualities that hold the bitrate. The plan that comes out is frozen and goes to `Codec.encode`
as it is; `record()` feeds back what the coded frame cost, which is all the state the parts keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from codec.plan import FramePlan

from .background_fill import BackgroundFill
from .background_schedule import BackgroundScheduler
from .detector import Detection
from .policy import RoiPolicy
from .ratecontrol import RateController
from .sources import Frame


class FramePlanner:
    """ROI policy + background schedule + optional background fill + optional rate control.

    policy: how detections become groups; background: when the background is sent; fill: the
    background blocks to send between refreshes (None = no fills); rate: holds a bitrate (None =
    the policy's qualities as they are).
    """

    def __init__(self, policy: RoiPolicy, background: BackgroundScheduler, fill: BackgroundFill | None = None,
                 rate: RateController | None = None):
        self.policy, self.background, self.fill, self.rate = policy, background, fill, rate

    @classmethod
    def init(cls, policy: RoiPolicy, *, bg_interval: int = 1, bg_fill: bool = True,
             target_kbps: float | None = None) -> "FramePlanner":
        """The planner of `roistream edge run`: fills only with a refresh interval, rate control
        only with a target."""
        return cls(policy, BackgroundScheduler(bg_interval),
                   BackgroundFill(bg_interval) if bg_fill and bg_interval != 1 else None,
                   RateController(target_kbps) if target_kbps else None)

    def plan(self, frame: Frame, detections: Sequence[Detection], dt_s: float) -> FramePlan:
        """What to code for `frame` (which covers `dt_s` seconds of video); records a background
        sent with the scheduler, so call it once per frame, in order."""
        h, w = frame.image.shape[:2]
        plan = self.policy.plan(detections, h, w)
        send_bg, reason = self.background.decide(frame.index, frame.image)
        if send_bg:
            plan = replace(plan, background_reason=reason)
        else:
            action, holes = self.fill.decide(frame.index, plan, h, w) if self.fill is not None else ("", None)
            if action == "fill":
                plan = plan.with_background_blocks(holes, "fill")
            elif action == "refresh":  # holes remain and no periodic refresh would ever cover them
                self.background.force(frame.index, frame.image)
                send_bg = True
                plan = replace(plan, background_reason="holes")
            else:
                plan = plan.without_background()
        if self.rate is not None:
            period = 1 if self.background.interval == 1 else max(self.background.interval, 1)
            plan = plan.with_qualities(self.rate.decide(plan, dt_s, period if send_bg else 1).qualities)
        return plan

    def record(self, frame: Frame, plan: FramePlan, group_bytes: dict[int, int], frame_bytes: int,
               dt_s: float) -> None:
        """Feed back what the coded frame cost: payload bytes per coded group, the serialized size."""
        if self.fill is not None and 0 in group_bytes:
            self.fill.record(frame.index, plan, refresh=plan.background_reason != "fill")
        if self.rate is not None:
            self.rate.update(plan, group_bytes, frame_bytes, dt_s)
