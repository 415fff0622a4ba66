"""Errors the interfaces catch, importable without the network stack."""


class NodeNotRunning(RuntimeError):
    """The peer is not running (not started yet, stopped, or crashed)."""


class StorageError(OSError):
    """The profile's database refused a write or a read (a full disk, a failing one).

    Its message is for the user. It is an ``OSError``: a local failure, not a bad argument,
    so callers that already report failed file operations report it too.
    """
