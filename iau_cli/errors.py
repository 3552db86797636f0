"""The one error hierarchy. Every subclass of :class:`IauError` is bad input: the CLI's error
boundary prints its message as one line on stderr and exits with code 2. Anything else is a bug."""


class IauError(Exception):
    """Bad input the user can fix. The message says what, where and how to fix it.

    ``kind`` is the stable name a script branches on (``--json`` writes it as ``error.kind``)."""

    exit_code = 2
    kind = "bad_input"


class ConfigError(IauError):
    """A run config (YAML or options) is invalid."""


class DataError(IauError):
    """A dataset cannot be read, or its rows break the data contract."""

    kind = "data"


class DataChangedError(DataError):
    """The training data differs from what the checkpoint was trained on (``data``: the data as
    read, so a caller can say which requested rows are gone)."""

    kind = "data_changed"
    data: object = None
    forgotten: object = None


class CheckpointError(IauError):
    """A checkpoint is missing, corrupt, of an unknown format, or inconsistent with its data."""

    kind = "checkpoint"


class IdsError(IauError):
    """A forget-id file or request is invalid."""


class ModelError(IauError):
    """A model cannot be built: unknown architecture, failing import path, bad arguments."""


class TrainingError(IauError):
    """Training produced a model that cannot be written (it diverged)."""


class UnlearningError(IauError):
    """An unlearning request cannot be carried out as asked (for example it diverged)."""


class OutputError(IauError):
    """An output cannot be written: it exists, the folder is read-only or full, or it is locked."""

    kind = "output"
