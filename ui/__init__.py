"""Qt user interface: windows, widgets, sound and the composition root (ui/app.py)."""
