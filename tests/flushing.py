"""Reference values as a float32-flushing adapter gives them: NVIDIA's drivers flush float32 subnormals to zero
(`tinydl.device_info()["flushes_subnormals"]`), which WGSL allows, so where torch's result is a subnormal such an
adapter's is a zero of the same sign."""
import numpy as np

import tinydl


def flushed(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """want with its float32 subnormals replaced by got's zeros where got is a zero of their sign, on an adapter
    that flushes subnormals; want as it is elsewhere."""
    want = np.asarray(want)
    if want.dtype != np.float32 or not tinydl.device_info()["flushes_subnormals"]:
        return want
    sub = (want != 0) & (np.abs(want) < np.finfo(np.float32).tiny) & (got == 0) & (np.signbit(got) == np.signbit(want))
    return np.where(sub, got, want).astype(np.float32)
