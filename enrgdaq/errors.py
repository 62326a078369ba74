"""The one exception tree of ENRGDAQ.

Every error a user can meet derives from :class:`DAQError`, and its message
says what to change. Callers catch the branch they can act on: a
``ConfigError`` means "fix the file", a ``ControlPlaneError`` means "Redis or
the workers are not where they should be", a ``MessageError`` means "a peer
sent something this process will not read".
"""

from __future__ import annotations


class DAQError(Exception):
    """Root of every error raised on purpose by ENRGDAQ."""


class ConfigError(DAQError):
    """Raised when a configuration file or value cannot be used as written.

    ``file``, ``line`` and ``field`` locate the problem where they are known,
    so that ``enrgdaq check`` and the supervisor can point at it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.location_text() + message)

    def location_text(self) -> str:
        """``file:line: field: `` prefix, with whatever parts are known."""
        parts = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + (": " if parts else "")


class ConfigValueError(ConfigError, ValueError):
    """Raised by a config struct's own checks (``__post_init__``): a ValueError too, which is what
    msgspec turns into a validation error located at the field."""


class UnknownJobTypeError(ConfigError):
    """Raised when ``daq_job_type`` names no registered job class."""


class PluginImportError(ConfigError):
    """Raised when a plugin module listed in ``plugins`` or in an entry point fails to import."""


class ConfigDirNotFoundError(ConfigError, ValueError):
    """Raised when the config directory does not exist (a ValueError too, as in the original)."""


class MissingDependencyError(ConfigError):
    """Raised when a job or store needs an optional dependency that is not installed.

    A config error: the file asks for something this installation cannot do, and
    running it again will not help until the extra is installed.
    """

    def __init__(self, what: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(f"{what} needs an optional dependency{detail}: pip install 'enrgdaq[{extra}]'")


class ControlPlaneError(DAQError):
    """Raised when Redis, the supervisor record or the job registry cannot be used."""


class SupervisorNotFoundError(ControlPlaneError):
    """Raised when a command looks for a running supervisor and finds none."""


class JobNotFoundError(ControlPlaneError):
    """Raised when a command names a job the registry does not hold."""


class JobConflictError(ControlPlaneError):
    """Raised when a request cannot be done in the job's present state: a job of that id exists
    already, or it is already running (the REST API answers 409)."""


class NodeNotHereError(ControlPlaneError):
    """Raised when a job's run starts on a machine that does not hold its node's message plane
    (a worker on another host taking that node's queue): its data would go nowhere."""


class AlreadyRunningError(ControlPlaneError):
    """Raised when ``enrgdaq up`` finds another one running on its directory, run directory or id."""


class DeviceError(DAQError):
    """Raised when a device cannot be reached or reports an error. The job closes the device and
    ends its run with this error; the supervisor shows it and restarts the job with backoff (a
    device that comes back is picked up without anyone's help)."""


class DeviceLibraryMissingError(DeviceError):
    """Raised when a real device is configured but its vendor library is not installed. Retried
    like a connection error, so installing the extra heals the job; the simulated device never
    needs it."""

    def __init__(self, what: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"{what} needs its vendor library{detail}: pip install 'enrgdaq[{extra}]' "
            "(or set the simulated device in its config)"
        )


class MessageError(DAQError):
    """Raised when a message cannot be encoded or a received frame cannot be decoded."""


class PayloadIndexError(MessageError, IndexError):
    """Raised when a store asks a run of ring payloads for a payload it does not hold (an
    IndexError too, so that a loop over the run ends as Python's loops expect)."""


class MessageRejectedError(MessageError):
    """Raised when a job is handed a message of a type it does not take."""


class MessagePayloadError(MessageError):
    """Raised when a message given as JSON (REST API, CLI) does not decode as its type, or names a
    type the job does not take; ``field`` says where (``message_type``, ``payload.store_config``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class DAQJobStopError(DAQError):
    """Raised inside a job to end its loop because a stop was requested (original name)."""


class StoreWriteError(DAQError):
    """Raised by a store when a write failed for a reason that may pass (a database down, a disk
    full): the store keeps the message(s) and retries with backoff (an ``OSError`` means the same).
    Raise it only when nothing of the message was kept, since the message is handed again."""


class JournalUnreachableError(StoreWriteError):
    """A store restarted after a crash cannot look at the files its last write went to (their
    directory is moved away, unmounted or replaced): it cannot tell which of the payloads waiting
    in its rings are on disk already, so it takes none of them until the directory is back."""
