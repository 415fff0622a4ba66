"""Dialogs about contacts: adding one from a link, their details and verification, blocking."""
