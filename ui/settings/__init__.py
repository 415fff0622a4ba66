"""File ▸ Settings…: everything a person may change."""
