"""Data containers: transition buffers and batches."""

from mbrl.data.buffer import TransitionBatch, TransitionBuffer

__all__ = ["TransitionBatch", "TransitionBuffer"]
