"""What every runtime implements, and the one error a runtime raises when it cannot run here.

A backend runs the codec's two float graphs (`codec.runtime.transforms`) on numpy float32 arrays;
everything after them (rounding, the integer hyper-synthesis, entropy coding) is the same numpy
code for every backend, which is what keeps streams decodable everywhere.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class RuntimeUnavailable(RuntimeError):
    """The requested runtime cannot run here: its package or device is missing, its exported
    models are missing or belong to other weights. The message says what to run or install."""


class Backend(Protocol):
    name: str  # what really runs, e.g. "torch-cpu-float32" or "onnxruntime-cpu-fp32"

    def analyze(self, x: np.ndarray, cell_mask: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def synthesize(self, y_hat: np.ndarray, inverse_gain: np.ndarray) -> np.ndarray: ...
