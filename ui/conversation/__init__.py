"""The centre of the window: one conversation (a contact or a room), its messages, the composer."""
