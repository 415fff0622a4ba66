"""Sending and receiving files: drops, the attach button, transfer state and the transfers panel."""
