"""TrainError: the one exception a training run raises for a failure that is not bad config.

A module of its own because every stage of a run (model loading, data preparation, the loop)
raises it and the command line catches it; config mistakes are ``settings.ConfigError``.
"""


class TrainError(RuntimeError):
    """Training cannot start or go on; the message says what to change."""
