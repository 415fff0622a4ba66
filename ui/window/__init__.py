"""The main window: its frame, its menus, and one part per concern that gives widgets behaviour."""
