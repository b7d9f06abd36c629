"""Emulated wearables: real bumble GATT servers on an in-process virtual radio, fed by scripted scenarios."""
