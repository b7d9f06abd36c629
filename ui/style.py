"""The console's dark bedside-monitor theme: colours, fonts and the Qt stylesheet."""

from __future__ import annotations

from PySide6.QtGui import QFont

from kapmonitor.measurements import Param

# -- colours ------------------------------------------------------------------------------------
BACKGROUND = "#000000"
PANEL = "#0b1016"
BORDER = "#243140"
TEXT = "#e8eef4"
MUTED = "#8a9aab"
GRID = "#2a3746"
#: Technical conditions (sensor off, no data): amber text, always with words, never colour alone.
ATTENTION = "#ffc94a"
ATTENTION_BG = "#2e2400"
#: A lost device: a warmer tone, again always with a symbol and words.
LOST = "#ff8a65"
OK = "#6fdc8c"
#: The pleth waveform: the SpO2 colour, as monitors draw it.
PLETH = "#35e0f0"
#: Blood pressure (NIBP): white-ish on monitors; the trend markers use the same colour.
BP = "#f0f0f0"

#: Parameter colours as bedside monitors use them: SpO2 cyan, pulse green.
PARAM_COLOURS: dict[Param, str] = {
    Param.SPO2: "#35e0f0",
    Param.PULSE_RATE: "#5cf07a",
    Param.HEART_RATE: "#5cf07a",
    Param.PERFUSION_INDEX: "#35e0f0",
    Param.SYSTOLIC: "#f0f0f0",
    Param.DIASTOLIC: "#f0f0f0",
    Param.MAP: "#f0f0f0",
    Param.BATTERY: MUTED,
}

#: Display labels (with the subscript the clinicians expect).
PARAM_LABELS: dict[Param, str] = {
    Param.SPO2: "SpO₂",
    Param.PULSE_RATE: "Pulse",
    Param.HEART_RATE: "HR",
    Param.PERFUSION_INDEX: "PI",
    Param.SYSTOLIC: "SYS",
    Param.DIASTOLIC: "DIA",
    Param.MAP: "MAP",
    Param.BATTERY: "Battery",
}

# -- fonts --------------------------------------------------------------------------------------
#: Preferred families, first available wins; DejaVu Sans has tabular digits and the status symbols.
FONT_FAMILIES = ["DejaVu Sans", "Noto Sans", "Segoe UI", "Helvetica Neue", "Arial"]


def font(pixel_size: int, *, bold: bool = False) -> QFont:
    """A theme font of the given pixel height (pixels, not points: the layout is sized in pixels)."""
    f = QFont()
    f.setFamilies(FONT_FAMILIES)
    f.setPixelSize(max(1, pixel_size))
    f.setBold(bold)
    return f


# Font sizes are set in code (ui.widgets) with font(); the stylesheet sets colours, frames and
# the sizes of the small labels only, so it never overrides a numeric's fitted font.
STYLESHEET = f"""
QMainWindow, QWidget#central {{
    background: {BACKGROUND};
}}
QWidget {{
    color: {TEXT};
}}
QFrame#topBar {{
    background: {PANEL};
    border-bottom: 1px solid {BORDER};
}}
QLabel#appTitle {{
    color: {MUTED};
    font-size: 18px;
    font-weight: bold;
    letter-spacing: 2px;
}}
QLabel#disclaimer {{
    color: {MUTED};
    font-size: 15px;
}}
QLabel#elapsedCaption, QLabel#wallCaption {{
    color: {MUTED};
    font-size: 18px;
}}
QLabel#elapsed, QLabel#wallTime {{
    color: {TEXT};
    font-size: 34px;
    font-weight: bold;
}}
NumericTile, BloodPressureTile {{
    background: {PANEL};
    border: 1px solid {BORDER};
    border-radius: 6px;
}}
NumericTile QLabel, BloodPressureTile QLabel {{
    background: transparent;
    border: none;
}}
QLabel#tileLabel {{
    font-size: 34px;
    font-weight: bold;
}}
QLabel#tileUnit {{
    font-size: 28px;
}}
QLabel#tileQuality, QLabel#bpStatus {{
    font-size: 30px;
    font-weight: bold;
    color: {ATTENTION};
    padding: 2px 10px;
}}
QLabel#tileQuality[active="true"], QLabel#bpStatus[active="true"] {{
    background: {ATTENTION_BG};
    border: 1px solid {ATTENTION};
    border-radius: 4px;
}}
QLabel#bpAge {{
    color: {MUTED};
    font-size: 26px;
}}
QLabel#bpStored {{
    font-size: 24px;
    font-weight: bold;
    color: {TEXT};
    padding: 1px 8px;
}}
QLabel#bpStored[active="true"] {{
    border: 1px solid {MUTED};
    border-radius: 4px;
}}
SweepWaveform {{
    background: {BACKGROUND};
    border: 1px solid {BORDER};
}}
QLabel#sweepLabel {{
    font-size: 22px;
    font-weight: bold;
    background: transparent;
}}
QLabel#sweepMessage {{
    color: {ATTENTION};
    font-size: 40px;
    font-weight: bold;
    background: transparent;
}}
TrendPlot {{
    background: {BACKGROUND};
    border: 1px solid {BORDER};
}}
DeviceStatusLine {{
    background: {PANEL};
    border-top: 1px solid {BORDER};
}}
DeviceStatusLine QLabel {{
    font-size: 20px;
    background: transparent;
}}
QLabel#deviceSymbol[state="connected"] {{ color: {OK}; }}
QLabel#deviceSymbol[state="nodata"], QLabel#deviceSymbol[state="searching"],
QLabel#deviceSymbol[state="connecting"], QLabel#deviceState[state="nodata"] {{ color: {ATTENTION}; }}
QLabel#deviceSymbol[state="lost"], QLabel#deviceSymbol[state="disconnected"],
QLabel#deviceState[state="lost"], QLabel#deviceState[state="disconnected"] {{ color: {LOST}; }}
QLabel#deviceName {{ font-weight: bold; }}
QLabel#deviceKind, QLabel#deviceDetail {{ color: {MUTED}; }}
QLabel#deviceMalformed {{ color: {ATTENTION}; }}
QLabel#deviceBattery {{ color: {MUTED}; }}
QLabel#deviceBattery[low="true"] {{ color: {ATTENTION}; font-weight: bold; }}
QLabel#deviceNone {{ color: {MUTED}; }}
"""
