"""Errors the interfaces catch, importable without the network stack."""


class NodeNotRunning(RuntimeError):
    """The peer is not running (not started yet, stopped, or crashed)."""
