"""Standard Bluetooth Heart Rate profile (service 0x180D): wire-format parser and driver glue."""
