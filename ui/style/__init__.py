"""How everything looks: colours from the system palette, tinted icons and fonts, light/dark."""
