"""The per-epoch curves inside ``checkpoint_*.pth`` / ``model_*.model``, read without executing anything."""

from monitor.checkpoints.errors import CheckpointError
from monitor.checkpoints.reader import CheckpointCurves, read_checkpoint_curves

__all__ = ["CheckpointCurves", "CheckpointError", "read_checkpoint_curves"]
