"""Bluetooth LE devices: pure byte parsers per GATT profile, drivers, the bleak link, emulators."""
