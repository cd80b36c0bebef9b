"""Data containers: transition and sequence (episode) buffers and their batches."""

from mbrl.data.buffer import TransitionBatch, TransitionBuffer
from mbrl.data.sequence_buffer import SequenceBatch, SequenceBuffer

__all__ = ["SequenceBatch", "SequenceBuffer", "TransitionBatch", "TransitionBuffer"]
