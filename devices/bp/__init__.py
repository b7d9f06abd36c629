"""The standard Blood Pressure profile (0x1810): wire parser/encoder and driver glue."""
