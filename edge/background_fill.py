"""Background fills: `BackgroundFill` sends, between refreshes, the background blocks no composite
layer covers yet, so the cloud's composites have no black holes where objects stood."""

from __future__ import annotations

from collections import deque

import numpy as np

from codec.bitstream import COMPOSITE_BACKGROUND_LAYERS
from codec.geometry import frame_blocks
from codec.plan import FramePlan

FILL_SPACING_WITHOUT_INTERVAL = 5  # frames between background fills when there is no refresh interval


class BackgroundFill:
    """Sends, between refreshes, the background blocks that no composite layer covers.

    A refresh codes the background around the objects of its frame, so it has holes where they
    stood. The cloud's composite fills them from older background records, newest first, at most
    COMPOSITE_BACKGROUND_LAYERS of them: a spot with an object on it at every refresh in that window
    would stay black (a person who stands still). This class keeps the block masks of those last
    layers, as the composite stacks them. On a frame without a refresh, the blocks none of them
    covers and no object stands on now are sent as a small background record (a fill) that the
    composite stacks like any other.

    At most `layers // 2 - 1` fills follow a refresh, so that a refresh with its fills, and the
    refresh before it with its own, stay within the composite's window. They are at least `spacing`
    frames apart (the refresh interval shared among them), so they are not all spent on the first
    frames after a refresh, when walking people have freed only a sliver of their spots. With
    interval 0 (no periodic refresh: static cameras), holes left once the fills are spent call for
    a refresh.
    """

    def __init__(self, interval: int, layers: int = COMPOSITE_BACKGROUND_LAYERS, spacing: int | None = None):
        self.interval = interval
        self.max_fills = max(layers // 2 - 1, 0)
        if spacing is None:
            spacing = interval // (self.max_fills + 1) if interval else FILL_SPACING_WITHOUT_INTERVAL
        self.spacing = max(1, spacing)
        self._layers: deque[np.ndarray] = deque(maxlen=layers)
        self._fills_since_refresh = 0
        self._last_layer = 0  # frame index of the last background sent
        self.sent = 0

    def holes(self, plan: FramePlan, height: int, width: int) -> np.ndarray | None:
        """Background blocks of this frame (inside it) that no layer covers, or None when there are none."""
        if not self._layers or 0 not in plan.groups:
            return None
        inside = np.zeros(plan.group_map.shape, bool)
        inside[frame_blocks(height, width)] = True
        holes = (plan.group_map == 0) & inside & ~np.logical_or.reduce(list(self._layers))
        return holes if holes.any() else None

    def decide(self, index: int, plan: FramePlan, height: int, width: int) -> tuple[str, np.ndarray | None]:
        """For a frame without a refresh due: ("fill", the background blocks to send), ("refresh",
        None) when holes remain, the fills are spent and no periodic refresh will come, or ("", None)."""
        holes = self.holes(plan, height, width)
        if holes is None:
            return "", None
        if self._fills_since_refresh < self.max_fills:
            if index - self._last_layer < self.spacing:
                return "", None
            return "fill", holes
        return ("refresh" if self.interval == 0 else ""), None

    def record(self, index: int, plan: FramePlan, refresh: bool) -> None:
        """Note the background frame `index` carried (call only when it carried one)."""
        self._layers.appendleft(plan.group_map == 0)
        self._last_layer = index
        if refresh:
            self._fills_since_refresh = 0
        else:
            self._fills_since_refresh += 1
            self.sent += 1
