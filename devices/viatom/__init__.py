"""Viatom/Lepu PC-60FW/PC-60NW fingertip oximeters (Nordic UART stream): frame parser and driver glue."""
