"""Standard Bluetooth Pulse Oximeter profile (service 0x1822): wire-format parser and driver glue."""
