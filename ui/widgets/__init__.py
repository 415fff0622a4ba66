"""Small widgets that several parts of the window share (avatar, QR code, banner, ...)."""
