"""Process-wide settings that make TensorFlow training bit-for-bit repeatable.

Call `pin_cpu_kernels()` before TensorFlow is imported and `seed_everything()` before a model is
built. Measured on TensorFlow 2.21: with both, weights are identical run to run, with 1 or 2
threads and with any steps_per_execution.
"""

from __future__ import annotations

import os
import sys


def pin_cpu_kernels() -> None:
    """Make oneDNN use its AVX2 kernels on every x86-64 CPU (else AVX-512 machines differ)."""
    if "tensorflow" in sys.modules and os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        raise RuntimeError("pin_cpu_kernels() must run before tensorflow is imported")
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep oneDNN/CPU banners out of logs


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
