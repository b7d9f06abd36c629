"""BerryMed BM1000-family oximeters (BCI 5-byte packet stream): packet parser and driver glue."""
