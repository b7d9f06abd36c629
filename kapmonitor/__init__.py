"""kapmonitor core: measurements, session, storage; free of Qt and Bluetooth."""

__version__ = "0.1.0"
