"""What to code in one frame: the group map and, per group, how (`FramePlan`, `GroupInfo`).

A plan is decided before encoding (by hand, by `roistream encode`, or by the edge's
`edge.planner.FramePlanner`) and handed to `Codec.encode` whole, so the choice of groups,
qualities, resolutions and encryption is made in one place and cannot change while a frame is
coded. Plans are frozen: a step that changes one (a background fill, rate control) makes a new
plan with `dataclasses.replace` or the `with_*` helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from .scaling import scale_log2

BACKGROUND = 0  # group id of the background
NOT_CODED = -1  # group-map id of blocks no group codes (a background fill leaves them out)


@dataclass(frozen=True)
class GroupInfo:
    """One group: quality q in [0, 1], label, detector score, sealed with the key or not, coded at
    1/scale resolution (1, 2, 4 or 8; codec.scaling), its number of blocks in the group map, and the
    object's track id (carried in the record, not coded; 0 = not tracked)."""

    label: str
    quality: float
    score: float = 0.0
    encrypt: bool = False
    scale: int = 1
    blocks: int = 0
    track_id: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"quality of group {self.label!r} must be in [0, 1], got {self.quality}")
        scale_log2(self.scale)  # ValueError unless 1, 2, 4 or 8


def _frozen_map(group_map: np.ndarray) -> np.ndarray:
    out = np.array(group_map, np.int32)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class FramePlan:
    """The groups to code in one frame.

    group_map: int32 block grid of the padded frame (geometry.block_grid_shape); blocks with an id
    that has no entry in `groups` (e.g. NOT_CODED, or the background of a frame that does not
    send it) are not coded. groups: the coded groups by id, ascending (0 = background).
    background_reason: why the background is sent with this frame ("" when it is not; for logs
    and metrics, the codec does not read it).
    """

    group_map: np.ndarray
    groups: Mapping[int, GroupInfo] = field(default_factory=dict)
    background_reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_map", _frozen_map(self.group_map))
        object.__setattr__(self, "groups", MappingProxyType(dict(sorted(self.groups.items()))))

    @classmethod
    def from_groups(cls, group_map: np.ndarray, qualities: float | Mapping[int, float] = 0.5, *,
                    labels: Mapping[int, str] | None = None, scores: Mapping[int, float] | None = None,
                    encrypt: Iterable[int] = (), scales: Mapping[int, int] | None = None,
                    groups: Iterable[int] | None = None) -> "FramePlan":
        """A plan for every id in `group_map` (or only `groups`): one q for all or a q per id
        (0.5 for ids not given), labels ("background" for 0), scores, ids to encrypt, scales."""
        group_map = np.asarray(group_map)
        ids = [int(i) for i in np.unique(group_map)]
        if groups is not None:
            wanted = set(groups)
            ids = [i for i in ids if i in wanted]
        encrypt, labels, scores, scales = set(encrypt), labels or {}, scores or {}, scales or {}
        infos = {}
        for gid in ids:
            q = qualities if isinstance(qualities, (int, float)) else qualities.get(gid, 0.5)
            infos[gid] = GroupInfo(labels.get(gid, "background" if gid == BACKGROUND else ""), float(q),
                                   float(scores.get(gid, 0.0)), gid in encrypt, scales.get(gid, 1),
                                   int((group_map == gid).sum()))
        return cls(group_map, infos)

    @classmethod
    def uniform(cls, height: int, width: int, quality: float, *, scale: int = 1) -> "FramePlan":
        """The whole frame as one background group."""
        from .geometry import block_grid_shape

        return cls.from_groups(np.zeros(block_grid_shape(height, width), np.int32), quality,
                               scales={BACKGROUND: scale})

    @property
    def object_ids(self) -> list[int]:
        return [g for g in self.groups if g != BACKGROUND]

    @property
    def has_background(self) -> bool:
        return BACKGROUND in self.groups

    @property
    def encrypt_ids(self) -> list[int]:
        return [g for g, info in self.groups.items() if info.encrypt]

    def qualities(self) -> dict[int, float]:
        return {g: info.quality for g, info in self.groups.items()}

    def with_qualities(self, qualities: Mapping[int, float]) -> "FramePlan":
        """The same plan with these groups' qualities changed."""
        groups = {g: replace(info, quality=float(qualities[g])) if g in qualities else info
                  for g, info in self.groups.items()}
        return replace(self, groups=groups)

    def without_background(self) -> "FramePlan":
        """The plan without group 0 (its blocks stay in the map, uncoded)."""
        return replace(self, groups={g: i for g, i in self.groups.items() if g != BACKGROUND}, background_reason="")

    def without_objects(self) -> "FramePlan":
        """The plan of the background alone (the objects' blocks stay in the map, uncoded)."""
        return replace(self, groups={g: i for g, i in self.groups.items() if g == BACKGROUND})

    def with_background_blocks(self, blocks: np.ndarray, reason: str) -> "FramePlan":
        """Send only these background blocks (a fill): the others become NOT_CODED."""
        group_map = np.where((self.group_map == BACKGROUND) & ~blocks, NOT_CODED, self.group_map).astype(np.int32)
        groups = dict(self.groups)
        groups[BACKGROUND] = replace(groups[BACKGROUND], blocks=int((group_map == BACKGROUND).sum()))
        return FramePlan(group_map, groups, reason)
