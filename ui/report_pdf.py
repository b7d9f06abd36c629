"""The PDF session report: header, trend charts, BP table, alarms with adjudications, observations, REMS."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QPointF, QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPainterPath,
    QPdfWriter,
    QPen,
    QPolygonF,
    QTextDocument,
)

from kapmonitor.clock import utc_iso
from kapmonitor.export.report_data import NOT_A_MEDICAL_DEVICE, AlarmSummary, ReportData, Trend
from kapmonitor.measurements import BloodPressure, Param
from kapmonitor.observations import DOSE_GIVEN, Observation, ObservationCatalogue
from kapmonitor.storage.review import Verdict
from ui.rems_pdf import NOT_A_SUBMISSION, rems_rows

TITLE = "KAP session report"
VERDICT_TEXT = {Verdict.TRUE: "True", Verdict.FALSE: "False", Verdict.NON_ACTIONABLE: "Non-actionable"}
_CHART_URL = QUrl("kapmonitor://trends.png")
_CHART_PX = (2400, 1150)  # drawn at about 300 dpi for the 180 mm text width

_SPO2 = QColor(0, 110, 190)
_PULSE = QColor(0, 140, 70)
_BP = QColor(200, 0, 0)
_ALARM = QColor(230, 120, 0)


# -- text helpers ------------------------------------------------------------------------------------
def hms(wall: float) -> str:
    """HH:MM:SS (UTC) of a wall time."""
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%H:%M:%S")


def _when(wall: float) -> str:
    """'2026-01-01 09:00:00 UTC'."""
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def minutes(position_s: float) -> str:
    """Minutes since the session start, as '+12.5'."""
    return f"+{position_s / 60.0:.1f}"


def _num(v: float | None, fmt: str = "{:g}") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def bp_text(b: BloodPressure) -> str:
    """'128/82 (97)': systolic/diastolic (mean) in mmHg."""
    text = f"{_num(b.systolic)}/{_num(b.diastolic)}"
    return text + (f" ({_num(b.mean)})" if b.mean is not None else "")


def verdict_text(a: AlarmSummary) -> str:
    return "not reviewed" if a.adjudication is None else VERDICT_TEXT[a.adjudication.verdict]


def observation_text(o: Observation, catalogue: ObservationCatalogue) -> tuple[str, str]:
    """(what, detail) of an observation as the report prints it."""
    what = catalogue.get(o.code).label if o.code in catalogue else o.code
    detail: list[str] = []
    if o.dose_mg is not None:
        detail.append(f"{o.dose_mg:g} mg")
    if o.scale is not None:
        detail.append(f"score {o.scale.total}")
    if o.text:
        detail.append(o.text)
    if o.amends is not None:
        detail.append(f"(correction of #{o.amends})")
    return what, "; ".join(detail)


# -- the trend chart ------------------------------------------------------------------------------------
def _segments(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Runs of finite values: a gap ("no valid value", a lost device) is not bridged."""
    ok = np.isfinite(y)
    if not ok.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.astype(np.int8), [0]))))
    return [(x[a:b], y[a:b]) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _panel(
    p: QPainter,
    rect: QRectF,
    *,
    trend: Trend,
    span_s: float,
    y_range: tuple[float, float],
    colour: QColor,
    title: str,
    data: ReportData,
) -> None:
    lo, hi = y_range

    def px(t: float) -> float:
        return rect.left() + rect.width() * t / span_s

    def py(v: float) -> float:
        return rect.bottom() - rect.height() * (min(max(v, lo), hi) - lo) / (hi - lo)

    p.setPen(QPen(QColor(0, 0, 0), 2))
    p.drawRect(rect)
    font = QFont("DejaVu Sans")
    font.setPixelSize(34)
    p.setFont(font)
    # horizontal grid with labels
    step = 5.0 if hi - lo <= 40 else 20.0
    v = math.ceil(lo / step) * step
    while v <= hi:
        p.setPen(QPen(QColor(215, 215, 215), 1))
        p.drawLine(QPointF(rect.left(), py(v)), QPointF(rect.right(), py(v)))
        p.setPen(QColor(60, 60, 60))
        p.drawText(
            QRectF(0, py(v) - 22, rect.left() - 10, 44),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            f"{v:g}",
        )
        v += step
    # vertical grid every 15 (or 30) minutes
    every = 15 * 60.0 if span_s <= 3 * 3600 else 30 * 60.0
    t = 0.0
    while t <= span_s + 1e-6:
        p.setPen(QPen(QColor(225, 225, 225), 1))
        p.drawLine(QPointF(px(t), rect.top()), QPointF(px(t), rect.bottom()))
        t += every
    # alarm onsets of this parameter, as orange ticks at the top
    p.setPen(QPen(_ALARM, 7))
    for a in data.alarms:
        if a.param == trend.param.value:
            x = px(a.onset_position_s)
            p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.top() + 45))
    # BP readings: dashed red lines
    pen = QPen(_BP, 2, Qt.PenStyle.DashLine)
    p.setPen(pen)
    origin = data.session.started_utc
    for b in data.blood_pressure:
        x = px(b.wall - origin)
        p.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
    # the trend itself
    p.setPen(QPen(colour, 5))
    for xs, ys in _segments(trend.position_s, trend.value):
        if len(xs) == 1:
            p.drawPoint(QPointF(px(float(xs[0])), py(float(ys[0]))))
            continue
        p.drawPolyline(QPolygonF([QPointF(px(float(a)), py(float(b))) for a, b in zip(xs, ys, strict=True)]))
    p.setPen(colour)
    title_font = QFont(font)
    title_font.setBold(True)
    p.setFont(title_font)
    p.drawText(QRectF(rect.left() + 12, rect.top() + 6, 600, 44), Qt.AlignmentFlag.AlignLeft, title)
    p.setFont(font)


def trend_chart(data: ReportData, size: tuple[int, int] = _CHART_PX) -> QImage:
    """SpO2 and pulse over the whole session, with BP readings (red, dashed) and alarm onsets (orange)."""
    w, h = size
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(QColor(255, 255, 255))
    spo2, pulse = data.trends[Param.SPO2], data.trends[Param.PULSE_RATE]
    ends = [data.duration_s or 0.0, *(float(tr.position_s[-1]) for tr in (spo2, pulse) if len(tr.position_s))]
    span = max(60.0, *ends)
    left, right, top, axis = 110.0, 40.0, 24.0, 100.0
    gap = 40.0
    panel_h = (h - top - axis - gap - 64) / 2
    p = QPainter(image)
    try:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r1 = QRectF(left, top, w - left - right, panel_h)
        r2 = QRectF(left, top + panel_h + gap, w - left - right, panel_h)
        pulse_vals = pulse.value[np.isfinite(pulse.value)]
        p_hi = max(140.0, math.ceil((float(pulse_vals.max()) + 10) / 20) * 20) if pulse_vals.size else 140.0
        _panel(p, r1, trend=spo2, span_s=span, y_range=(80.0, 100.0), colour=_SPO2, title="SpO2 %", data=data)
        _panel(
            p,
            r2,
            trend=pulse,
            span_s=span,
            y_range=(40.0, p_hi),
            colour=_PULSE,
            title="Pulse /min",
            data=data,
        )
        font = QFont("DejaVu Sans")
        font.setPixelSize(34)
        p.setFont(font)
        p.setPen(QColor(0, 0, 0))
        every = 15 * 60.0 if span <= 3 * 3600 else 30 * 60.0
        t = 0.0
        while t <= span + 1e-6:
            x = r2.left() + r2.width() * t / span
            p.drawText(
                QRectF(x - 60, r2.bottom() + 6, 120, 44), Qt.AlignmentFlag.AlignHCenter, f"{t / 60:.0f}"
            )
            t += every
        p.drawText(
            QRectF(r2.left(), r2.bottom() + 48, r2.width(), 44),
            Qt.AlignmentFlag.AlignHCenter,
            "minutes since the session start",
        )
        # legend
        y = h - 52.0
        x = left
        for colour, label, style in (
            (_SPO2, "SpO2", Qt.PenStyle.SolidLine),
            (_PULSE, "Pulse", Qt.PenStyle.SolidLine),
            (_BP, "BP reading", Qt.PenStyle.DashLine),
            (_ALARM, "alarm onset", Qt.PenStyle.SolidLine),
        ):
            p.setPen(QPen(colour, 4, style))
            path = QPainterPath(QPointF(x, y + 22))
            path.lineTo(x + 50, y + 22)
            p.drawPath(path)
            p.setPen(QColor(0, 0, 0))
            p.drawText(QRectF(x + 60, y, 300, 44), Qt.AlignmentFlag.AlignLeft, label)
            x += 360
    finally:
        p.end()
    return image


# -- the document ---------------------------------------------------------------------------------------
def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], empty: str) -> str:
    if not rows:
        return f"<p class='none'>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='grid' cellspacing='0' cellpadding='3' width='100%'><tr>{head}</tr>{body}</table>"


def header_rows(data: ReportData) -> list[tuple[str, str]]:
    """(field, value) of the report's header."""
    s, d = data.session, data.details
    doses = [o.dose_mg for o in data.observations if o.code == DOSE_GIVEN and o.dose_mg is not None]
    duration = data.duration_s
    rows = [
        ("Patient id", d.patient if d else "not entered"),
        ("Protocol", f"{d.protocol.value.replace('_', ' ')} ({d.route})" if d else "not entered"),
        ("Planned dose", _num(d.planned_dose_mg, "{:g} mg") if d else "not entered"),
        ("Dose given", f"{sum(doses):g} mg in {len(doses)} dose(s)" if doses else "none logged"),
        ("Lot", (d.lot or "—") if d else "—"),
        ("Clinicians", ", ".join(d.clinicians) if d else "not entered"),
        ("Session", s.id),
        ("Start", _when(s.started_utc)),
        ("End", "not ended" if s.ended_utc is None else _when(s.ended_utc)),
        ("Duration", "—" if duration is None else f"{duration / 60:.0f} min"),
        ("Status", f"{s.status} ({s.kind})"),
        ("Recorded by", f"kapmonitor {s.app_version}"),
    ]
    return rows


def report_html(data: ReportData, catalogue: ObservationCatalogue | None = None) -> str:
    """The report as HTML for QTextDocument; the chart is the image resource at _CHART_URL."""
    cat = catalogue if catalogue is not None else ObservationCatalogue.default()
    origin = data.session.started_utc
    pairs = header_rows(data)
    head = "".join(
        "<tr>"
        + "".join(
            f"<td class='h'>{escape(k)}</td><td class='v'>{escape(v)}</td>" for k, v in pairs[i : i + 2]
        )
        + "</tr>"
        for i in range(0, len(pairs), 2)
    )
    bp = _table(
        ("Time (UTC)", "Min", "Sys/Dia (Mean) mmHg", "Pulse /min", "Source"),
        [
            (
                hms(b.wall),
                minutes(b.wall - origin),
                bp_text(b),
                _num(b.pulse_rate),
                "stored in cuff" if b.stored else "live",
            )
            for b in data.blood_pressure
        ],
        "No blood-pressure reading was recorded.",
    )
    alarms = _table(
        ("Time (UTC)", "Min", "Priority", "Alarm", "Value", "Ended", "Verdict", "Reviewer's comment"),
        [
            (
                hms(a.onset_utc),
                minutes(a.onset_position_s),
                a.priority,
                a.message or a.key,
                _num(a.value_at_onset),
                "not cleared" if a.cleared_position_s is None else minutes(a.cleared_position_s),
                verdict_text(a),
                ""
                if a.adjudication is None
                else f"{a.adjudication.comment} ({a.adjudication.reviewer})".strip(),
            )
            for a in data.alarms
        ],
        "No alarm was raised.",
    )
    obs = _table(
        ("Time (UTC)", "Min", "Observation", "Detail", "By"),
        [
            (hms(o.t_pressed_utc), minutes(o.t_pressed_utc - origin), *observation_text(o, cat), o.author)
            for o in data.observations
        ],
        "No observation was logged.",
    )
    notes = _table(
        ("Time (UTC)", "Min", "Annotation", "Reviewer"),
        [(hms(a.t_utc), minutes(a.position_s), a.text, a.reviewer) for a in data.annotations],
        "No reviewer annotation.",
    )
    rems = ""
    if data.rems is not None and data.details is not None:
        rows = "".join(
            f"<tr><td class='k'>{escape(k)}</td><td>{escape(v)}</td></tr>"
            for k, v in rems_rows(data.rems, data.details)
        )
        flags = "".join(f"<li>{escape(f)}</li>" for f in data.rems.flags) or "<li>No flags.</li>"
        rems = (
            f"<h2>Esketamine REMS fields</h2><p class='warn'>{escape(NOT_A_SUBMISSION)}</p>"
            f"<table class='grid' cellspacing='0' cellpadding='3' width='100%'>{rows}</table>"
            f"<p><b>Needs review:</b></p><ul>{flags}</ul>"
        )
    verdicts = [a for a in data.alarms if a.adjudication is not None]
    summary = (
        f"{len(data.alarms)} alarm(s); {len(verdicts)} adjudicated: "
        + ", ".join(
            f"{sum(1 for a in verdicts if a.adjudication and a.adjudication.verdict == v)} "
            f"{VERDICT_TEXT[v].lower()}"
            for v in Verdict
        )
        if data.alarms
        else ""
    )
    return f"""
<html><head><style>
body {{ font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 9pt; color: #000; }}
h1 {{ font-size: 16pt; margin-bottom: 0pt; }}
h2 {{ font-size: 11.5pt; margin-top: 12pt; margin-bottom: 4pt; border-bottom: 1px solid #000; }}
.aid {{ font-size: 9pt; font-weight: bold; }}
.warn {{ font-weight: bold; }}
table.grid {{ border-collapse: collapse; border: 1px solid #888; }}
table.grid th {{ background: #e6e6e6; text-align: left; font-weight: bold; border: 1px solid #888; }}
table.grid td {{ border: 1px solid #bbb; vertical-align: top; }}
td.k {{ font-weight: bold; width: 40%; }}
td.h {{ font-weight: bold; background: #f0f0f0; width: 15%; }}
td.v {{ width: 35%; }}
.none {{ font-style: italic; }}
.small {{ font-size: 7.5pt; color: #333; }}
</style></head><body>
<h1>{escape(TITLE)}</h1>
<p class='aid'>{escape(NOT_A_MEDICAL_DEVICE)} Review the recording before relying on this report.</p>
<table class='grid' cellspacing='0' cellpadding='3' width='100%'>{head}</table>
<h2>Trends</h2>
<p><img src='{_CHART_URL.toString()}' width='640'></p>
<h2>Blood pressure</h2>{bp}
<h2>Alarms and adjudications</h2><p>{escape(summary)}</p>{alarms}
<h2>Observation log</h2>{obs}
<h2>Reviewer annotations</h2>{notes}
{rems}
<p class='small'>Generated {escape(utc_iso(data.generated_utc))} by kapmonitor
from session {escape(data.session.id)}. Times are UTC; "Min" is minutes since the session start.</p>
</body></html>"""


def render_report(data: ReportData) -> bytes:
    """The report as PDF bytes (A4 portrait)."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait, QMarginsF(15, 15, 15, 15)
        )
    )
    writer.setResolution(300)
    writer.setTitle(f"{TITLE} {data.session.id}")
    writer.setCreator("kapmonitor")
    doc = QTextDocument()
    doc.addResource(QTextDocument.ResourceType.ImageResource, _CHART_URL, trend_chart(data))
    doc.setHtml(report_html(data))
    doc.print_(writer)
    del writer  # finishes the PDF into the buffer
    buffer.close()
    out: QByteArray = buffer.data()
    return bytes(out.data())


def write_report_pdf(data: ReportData, path: str | os.PathLike[str]) -> Path:
    """Write the report to a new file at `path`, readable by its owner only (it holds patient data).

    An existing file is never overwritten (FileExistsError).
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists; an export never overwrites a file")
    pdf = render_report(data)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pdf)
    return target


__all__ = ["TITLE", "header_rows", "render_report", "report_html", "trend_chart", "write_report_pdf"]
