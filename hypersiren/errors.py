"""Exceptions a user can act on. The CLI prints them as one line and exits with status 2."""


class HypersirenError(Exception):
    """Base class: the message names what was wrong and what was expected."""


class InputError(HypersirenError, ValueError):
    """An input (file, option, array) is missing, unreadable or out of range."""


class CheckpointError(HypersirenError):
    """A checkpoint is missing, corrupt, of another kind or not a hypersiren checkpoint."""


class TrainingDiverged(HypersirenError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class NoSpaceError(HypersirenError):
    """A write failed for lack of space (disk full, quota, file-size limit); nothing half-written is left."""
