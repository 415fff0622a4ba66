"""Finding things: message search (Ctrl+F) and the quick switcher (Ctrl+K)."""
