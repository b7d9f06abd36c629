"""The esketamine REMS patient monitoring form as a printable A4 PDF (a worksheet, not a submission)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

from kapmonitor.rems import BpField, ConcomitantCategory, RemsForm
from kapmonitor.workflow import SessionDetails

#: Printed at the top of every form: the console fills a worksheet, the clinician submits the form.
NOT_A_SUBMISSION = "NOT A SUBMISSION — transcribe to the official form"


def yes_no(value: bool | None, *, none: str = "not recorded") -> str:
    return none if value is None else ("Yes" if value else "No")


def _bp(f: BpField) -> str:
    if f.reading is None:
        text = "—"
    else:
        text = f"{f.text} mmHg"
        if f.minutes_after_first_device is not None:
            m = f.minutes_after_first_device
            text += f" ({m:+.0f} min from first device)"
    if f.flag is not None:
        text += f"  [{f.flag.value.upper()}]"
    return text


def rems_rows(form: RemsForm, details: SessionDetails) -> list[tuple[str, str]]:
    """(field, value) for every field of the form, in the form's order (kap-session.md "REMS")."""
    ready = (
        "not recorded" if form.ready_to_leave_minutes is None else f"{form.ready_to_leave_minutes:.0f} min"
    )
    return [
        ("Patient (pseudonymous id)", form.patient),
        ("Name, date of birth, sex", "fill in from the patient record"),
        ("First treatment", "fill in"),
        *(
            (f"Concomitant: {c.value}", "Yes" if c in form.concomitant else "No (none entered)")
            for c in ConcomitantCategory
        ),
        ("Concomitant medicines as entered", ", ".join(details.concomitant) or "none entered"),
        ("Monitoring clinician(s)", ", ".join(form.clinicians)),
        ("Setting", "fill in"),
        ("Session date (UTC)", form.session_date),
        ("Dose", f"{form.dose_mg:g} mg (category: {form.dose_category})"),
        ("Lot number", form.lot or "—"),
        ("Total minutes, first device to end of monitoring", f"{form.total_minutes:.0f} min"),
        ("Ready to leave, if no 2-hour minimum (from first device)", ready),
        ("Vitals in acceptable range before dosing", yes_no(form.vitals_in_range_before_dosing)),
        ("Vitals in acceptable range before completion", yes_no(form.vitals_in_range_before_completion)),
        ("BP before dosing", _bp(form.bp_before_dosing)),
        ("BP at 40 minutes", _bp(form.bp_at_40_min)),
        ("BP before completion", _bp(form.bp_before_completion)),
        ("Sedation occurred", yes_no(form.sedation_occurred, none="not scored")),
        ("Dissociation occurred", yes_no(form.dissociation_occurred, none="not scored")),
        ("Respiratory depression occurred", "clinician to answer (not derived from the recording)"),
    ]


def rems_html(form: RemsForm, details: SessionDetails, *, generated: str = "") -> str:
    rows = "".join(
        f"<tr><td class='k'>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rems_rows(form, details)
    )
    if form.flags:
        flags = "".join(f"<li>{escape(f)}</li>" for f in form.flags)
        flag_block = f"<h3>Needs review before transcribing</h3><ul>{flags}</ul>"
    else:
        flag_block = "<h3>Needs review before transcribing</h3><p>No flags.</p>"
    gen = f"<p class='small'>Generated {escape(generated)} by kapmonitor.</p>" if generated else ""
    return f"""
<html><head><style>
body {{ font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 10pt; color: #000; }}
h1 {{ font-size: 15pt; margin-bottom: 2pt; }}
h3 {{ font-size: 11pt; margin-top: 10pt; }}
.warn {{ font-size: 12pt; font-weight: bold; border: 2px solid #000; padding: 4pt; }}
td {{ padding: 3pt 6pt; vertical-align: top; }}
td.k {{ font-weight: bold; width: 45%; }}
.small {{ font-size: 8pt; color: #333; }}
</style></head><body>
<h1>Esketamine REMS — patient monitoring worksheet</h1>
<p class='warn'>{escape(NOT_A_SUBMISSION)}</p>
<table border='1' cellspacing='0' width='100%'>{rows}</table>
{flag_block}
<p>Submit the official form within 7 days of the session. Reviewed by: ____________________
&nbsp; Date: ____________</p>
{gen}
</body></html>"""


def write_rems_pdf(form: RemsForm, details: SessionDetails, path: Path | str, *, generated: str = "") -> Path:
    """Write the form as a printable A4 PDF at `path` and return it. `generated` (e.g. a UTC time
    text) is printed in the footer."""
    out = Path(path)
    writer = QPdfWriter(str(out))
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait, QMarginsF(15, 15, 15, 15)
        )
    )
    writer.setResolution(300)
    writer.setTitle("Esketamine REMS monitoring worksheet")
    writer.setCreator("kapmonitor")
    doc = QTextDocument()
    doc.setHtml(rems_html(form, details, generated=generated))
    doc.print_(writer)
    if not out.exists() or out.stat().st_size == 0:
        raise OSError(f"the PDF was not written to {out}")
    return out


__all__ = ["NOT_A_SUBMISSION", "rems_html", "rems_rows", "write_rems_pdf", "yes_no"]
