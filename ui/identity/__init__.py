"""You: your peer as the window knows it, your name, invite, identity and how others reach you."""
