"""Kith: peer-to-peer chat and file sharing."""

__version__ = "0.1.0"
