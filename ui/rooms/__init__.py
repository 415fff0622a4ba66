"""Dialogs and panels about rooms: creating, joining, inviting, and who is in the open room."""
