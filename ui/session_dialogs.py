"""The clinician's session dialogs: new session, the pre-dose BP gate, scale quick entry, free text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import override

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kapmonitor.observations import SCALE_RANGE, Scale, ScaleScore
from kapmonitor.workflow import (
    BP_GATE_DIASTOLIC,
    BP_GATE_SYSTOLIC,
    ESKETAMINE_DEVICE_MG,
    ChecklistItem,
    GateChoice,
    SessionDetails,
    TreatmentProtocol,
)
from ui import style

DIALOG_STYLESHEET = f"""
QDialog {{ background: {style.PANEL}; }}
QDialog QLabel, QDialog QRadioButton, QDialog QCheckBox {{ color: {style.TEXT}; font-size: 16px; }}
QDialog QLineEdit, QDialog QComboBox, QDialog QDoubleSpinBox, QDialog QSpinBox,
QDialog QPlainTextEdit, QDialog QListWidget {{
    background: {style.BACKGROUND}; color: {style.TEXT}; border: 1px solid {style.BORDER};
    font-size: 16px; padding: 3px;
}}
QDialog QListWidget::item:selected {{ background: {style.BORDER}; }}
QDialog QListWidget::indicator {{ width: 14px; height: 14px; border: 1px solid {style.MUTED}; }}
QDialog QListWidget::indicator:checked {{ background: {style.OK}; }}
QDialog QPushButton {{
    background: {style.BORDER}; color: {style.TEXT}; font-size: 16px; padding: 6px 14px;
    border: 1px solid {style.MUTED}; border-radius: 4px;
}}
QDialog QPushButton:focus {{ border: 2px solid {style.TEXT}; }}
QLabel#dialogError {{ color: {style.ATTENTION}; font-weight: bold; }}
QLabel#dialogHint {{ color: {style.MUTED}; font-size: 14px; }}
QLabel#gateReading {{ color: {style.ATTENTION}; font-size: 22px; font-weight: bold; }}
"""

PROTOCOL_LABELS: dict[TreatmentProtocol, str] = {
    TreatmentProtocol.ESKETAMINE_IN: "Esketamine, intranasal",
    TreatmentProtocol.KETAMINE_IV: "Ketamine, IV infusion",
    TreatmentProtocol.KETAMINE_IM: "Ketamine, intramuscular",
    TreatmentProtocol.KETAMINE_SL: "Ketamine, sublingual",
}

#: MOAA/S levels (kap-session.md "Scales").
MOAAS_LEVELS: dict[int, str] = {
    5: "Responds readily to name in a normal tone",
    4: "Lethargic response to name in a normal tone",
    3: "Responds only to loud or repeated name",
    2: "Responds only after mild prodding or shaking",
    1: "Responds only after a painful trapezius squeeze",
    0: "No response",
}
#: RASS levels (+4 combative ... 0 alert and calm ... -5 unarousable; kap-session.md "Scales").
RASS_LEVELS: dict[int, str] = {
    4: "Combative",
    3: "Very agitated",
    2: "Agitated",
    1: "Restless",
    0: "Alert and calm",
    -1: "Drowsy",
    -2: "Light sedation",
    -3: "Moderate sedation",
    -4: "Deep sedation",
    -5: "Unarousable",
}
#: The CADSS items the 6-item short form keeps (kap-session.md "Scales").
CADSS6_ITEMS: tuple[int, ...] = (1, 2, 6, 7, 15, 22)


def split_list(text: str) -> tuple[str, ...]:
    """'Dr A, RN B;' → ('Dr A', 'RN B'): comma or semicolon separated, blanks dropped, order kept."""
    out: list[str] = []
    for part in text.replace(";", ",").split(","):
        p = part.strip()
        if p and p not in out:
            out.append(p)
    return tuple(out)


class _Dialog(QDialog):
    """A themed dialog with an error line; `accept()` runs `validate()` and stays open on a problem."""

    def __init__(self, title: str, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setStyleSheet(DIALOG_STYLESHEET)
        self.error = QLabel("")
        self.error.setObjectName("dialogError")
        self.error.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def validate(self) -> str:
        """The problem that keeps the dialog open, or '' when it may be accepted."""
        return ""

    @override
    def accept(self) -> None:
        problem = self.validate()
        self.error.setText(problem)
        if not problem:
            super().accept()


class NewSessionDialog(_Dialog):
    """The new-session data; recent patients and clinicians are offered again."""

    def __init__(
        self,
        recent_patients: Sequence[str] = (),
        recent_clinicians: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("New session", parent)
        self._details: SessionDetails | None = None
        form = QFormLayout()

        self.patient = QComboBox()
        self.patient.setEditable(True)
        self.patient.addItems(list(recent_patients))
        self.patient.setCurrentIndex(-1)
        self.patient.setEditText("")
        edit = self.patient.lineEdit()
        assert edit is not None  # an editable combo box has one
        edit.setPlaceholderText("pseudonymous id, e.g. P-017")
        form.addRow("&Patient", self.patient)

        self.recent_clinicians = QListWidget()
        for name in recent_clinicians:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.recent_clinicians.addItem(item)
        self.recent_clinicians.setMaximumHeight(110)
        self.recent_clinicians.setVisible(bool(recent_clinicians))
        label = QLabel("Recent clinicians (Space ticks)")
        label.setVisible(bool(recent_clinicians))
        form.addRow(label, self.recent_clinicians)
        self.clinicians = QLineEdit()
        self.clinicians.setPlaceholderText("others present, comma-separated")
        form.addRow("&Clinicians", self.clinicians)

        self.protocol = QComboBox()
        for proto, text in PROTOCOL_LABELS.items():
            self.protocol.addItem(text, proto.value)
        form.addRow("P&rotocol", self.protocol)
        self.dose = QDoubleSpinBox()
        self.dose.setRange(0.0, 1000.0)
        self.dose.setDecimals(1)
        self.dose.setSuffix(" mg")
        self.dose.setSpecialValueText("not set")
        form.addRow("Planned &dose", self.dose)
        self.route = QLineEdit()
        form.addRow("Ro&ute", self.route)
        self.lot = QLineEdit()
        form.addRow("&Lot number", self.lot)
        self.concomitant = QLineEdit()
        self.concomitant.setPlaceholderText("e.g. lorazepam, methylphenidate")
        form.addRow("Co&ncomitant medicines", self.concomitant)
        hint = QLabel(f"Esketamine: one nasal device is {ESKETAMINE_DEVICE_MG:g} mg (56 mg = 2, 84 mg = 3).")
        hint.setObjectName("dialogHint")

        self.protocol.currentIndexChanged.connect(self._protocol_changed)
        self._protocol_changed()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.patient.setFocus()

    def _protocol_changed(self) -> None:
        proto = self.current_protocol()
        self.route.setText(proto.route)
        if proto == TreatmentProtocol.ESKETAMINE_IN:
            self.dose.setSingleStep(ESKETAMINE_DEVICE_MG)
            if self.dose.value() == 0:
                self.dose.setValue(2 * ESKETAMINE_DEVICE_MG)
        else:
            self.dose.setSingleStep(5.0)

    def current_protocol(self) -> TreatmentProtocol:
        return TreatmentProtocol(self.protocol.currentData())

    def set_protocol(self, protocol: TreatmentProtocol) -> None:
        self.protocol.setCurrentIndex(self.protocol.findData(TreatmentProtocol(protocol).value))

    def tick_clinician(self, name: str, ticked: bool = True) -> None:
        """Tick (or untick) a recent clinician by name."""
        for i in range(self.recent_clinicians.count()):
            item = self.recent_clinicians.item(i)
            if item.text() == name:
                item.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                return
        raise KeyError(f"{name!r} is not among the recent clinicians")

    def offered_patients(self) -> list[str]:
        return [self.patient.itemText(i) for i in range(self.patient.count())]

    def offered_clinicians(self) -> list[str]:
        return [self.recent_clinicians.item(i).text() for i in range(self.recent_clinicians.count())]

    def chosen_clinicians(self) -> tuple[str, ...]:
        ticked = [
            self.recent_clinicians.item(i).text()
            for i in range(self.recent_clinicians.count())
            if self.recent_clinicians.item(i).checkState() == Qt.CheckState.Checked
        ]
        out = list(ticked)
        for name in split_list(self.clinicians.text()):
            if name not in out:
                out.append(name)
        return tuple(out)

    def _build(self) -> SessionDetails:
        dose = self.dose.value()
        return SessionDetails(
            patient=self.patient.currentText().strip(),
            clinicians=self.chosen_clinicians(),
            protocol=self.current_protocol(),
            planned_dose_mg=dose if dose > 0 else None,
            route=self.route.text().strip(),
            lot=self.lot.text().strip(),
            concomitant=split_list(self.concomitant.text()),
        )

    @override
    def validate(self) -> str:
        try:
            self._details = self._build()
        except ValueError as exc:
            self._details = None
            return str(exc)
        return ""

    def details(self) -> SessionDetails | None:
        """The accepted details (None until the dialog was accepted with valid data)."""
        return self._details


class BpGateDialog(_Dialog):
    """The pre-dose BP gate: a baseline above 140/90 mmHg needs a recorded decision; proceeding needs
    a reason (kap-session.md "Pre-dose baseline")."""

    def __init__(self, systolic: float, diastolic: float, parent: QWidget | None = None) -> None:
        super().__init__("Pre-dose blood pressure", parent)
        reading = QLabel(
            f"Baseline {systolic:.0f}/{diastolic:.0f} mmHg is above "
            f"{BP_GATE_SYSTOLIC:.0f}/{BP_GATE_DIASTOLIC:.0f} mmHg"
        )
        reading.setObjectName("gateReading")
        self.group = QButtonGroup(self)
        self.options: dict[GateChoice, QRadioButton] = {
            GateChoice.PROCEED: QRadioButton("&Proceed with the dose (reason required)"),
            GateChoice.DELAY: QRadioButton("&Delay: repeat the reading later"),
            GateChoice.CANCEL: QRadioButton("&Cancel the session"),
        }
        layout = QVBoxLayout(self)
        layout.addWidget(reading)
        for button in self.options.values():
            self.group.addButton(button)
            layout.addWidget(button)
        self.options[GateChoice.DELAY].setChecked(True)
        self.reason = QLineEdit()
        reason_label = QLabel("&Reason")
        reason_label.setBuddy(self.reason)
        layout.addWidget(reason_label)
        layout.addWidget(self.reason)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def choose(self, choice: GateChoice) -> None:
        self.options[choice].setChecked(True)

    def choice(self) -> GateChoice:
        return next(c for c, b in self.options.items() if b.isChecked())

    @override
    def validate(self) -> str:
        if self.choice() == GateChoice.PROCEED and not self.reason.text().strip():
            return "Proceeding above 140/90 mmHg needs a reason."
        return ""


class ScaleDialog(_Dialog):
    """Quick entry of one scale: MOAA/S and RASS as a list of levels (the digit keys pick a MOAA/S
    level, arrows move, Enter accepts), CADSS-6 as six items scored 0-4."""

    def __init__(self, scale: Scale, parent: QWidget | None = None) -> None:
        super().__init__(_SCALE_TITLES[scale], parent)
        self.scale = Scale(scale)
        layout = QVBoxLayout(self)
        self.levels: QListWidget | None = None
        self.items: list[QSpinBox] = []
        if self.scale == Scale.CADSS6:
            form = QFormLayout()
            low, high = SCALE_RANGE[self.scale]
            for number in CADSS6_ITEMS:
                spin = QSpinBox()
                spin.setRange(low, high)
                form.addRow(f"CADSS item {number} (0-4)", spin)
                self.items.append(spin)
            layout.addLayout(form)
            hint = "Type each item's score; Tab moves to the next item, Enter saves."
        else:
            levels = MOAAS_LEVELS if self.scale == Scale.MOAAS else RASS_LEVELS
            self.levels = QListWidget()
            for value, text in levels.items():
                item = QListWidgetItem(
                    f"{value:+d}  {text}" if self.scale == Scale.RASS else f"{value}  {text}"
                )
                item.setData(Qt.ItemDataRole.UserRole, value)
                self.levels.addItem(item)
            self.levels.setCurrentRow(0 if self.scale == Scale.MOAAS else list(levels).index(0))
            self.levels.itemDoubleClicked.connect(lambda _item: self.accept())
            self.levels.installEventFilter(self)
            layout.addWidget(self.levels)
            hint = (
                "Press the score's digit, or move with the arrows; Enter saves."
                if self.scale == Scale.MOAAS
                else "Move with the arrows; Enter saves."
            )
        hint_label = QLabel(hint)
        hint_label.setObjectName("dialogHint")
        layout.addWidget(hint_label)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        (self.levels if self.levels is not None else self.items[0]).setFocus()

    def set_value(self, value: int) -> None:
        """Select a MOAA/S or RASS level."""
        if self.levels is None:
            raise TypeError("CADSS-6 is scored item by item: set_items")
        for i in range(self.levels.count()):
            if self.levels.item(i).data(Qt.ItemDataRole.UserRole) == value:
                self.levels.setCurrentRow(i)
                return
        raise ValueError(f"{value} is not a {self.scale.value} level")

    def set_items(self, values: Sequence[int]) -> None:
        if len(values) != len(self.items):
            raise ValueError(f"CADSS-6 has {len(self.items)} items")
        for spin, v in zip(self.items, values, strict=True):
            spin.setValue(v)

    def score(self) -> ScaleScore:
        if self.levels is not None:
            item = self.levels.currentItem()
            return ScaleScore(self.scale, (int(item.data(Qt.ItemDataRole.UserRole)),))
        return ScaleScore.cadss6(spin.value() for spin in self.items)

    def _digit(self, event: QKeyEvent) -> bool:
        """A MOAA/S digit key selects that level (the list's own type-ahead search never sees it)."""
        text = event.text()
        if self.scale == Scale.MOAAS and len(text) == 1 and text.isdigit() and int(text) in MOAAS_LEVELS:
            self.set_value(int(text))
            return True
        return False

    @override
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.levels and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._digit(event)
        return super().eventFilter(watched, event)

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._digit(event):
            super().keyPressEvent(event)


#: The discharge checklist as the clinician reads it, each with its key (kap-session.md "Recovery").
CHECKLIST_LABELS: dict[ChecklistItem, str] = {
    ChecklistItem.SEDATION_RESOLVED: "&1  Sedation resolved",
    ChecklistItem.DISSOCIATION_RESOLVED: "&2  Dissociation resolved",
    ChecklistItem.RESPIRATORY_DEPRESSION_RESOLVED: "&3  No respiratory depression",
    ChecklistItem.VITALS_IN_RANGE: "&4  Vital signs in acceptable range",
}


class DischargeDialog(_Dialog):
    """The discharge checklist and the "ready to leave" time (kap-session.md "Recovery and
    discharge"): items already confirmed stay ticked and cannot be unticked (they are recorded);
    "ready to leave" needs every item."""

    def __init__(
        self,
        done: dict[ChecklistItem, bool],
        *,
        ready_recorded: bool,
        minimum_left_s: float = 0.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Discharge checklist", parent)
        layout = QVBoxLayout(self)
        self.items: dict[ChecklistItem, QCheckBox] = {}
        for item, text in CHECKLIST_LABELS.items():
            box = QCheckBox(text)
            if done.get(item):
                box.setChecked(True)
                box.setEnabled(False)  # recorded already
            self.items[item] = box
            layout.addWidget(box)
        self.ready = QCheckBox("&R  Ready to leave now (records the time)")
        if ready_recorded:
            self.ready.setChecked(True)
            self.ready.setEnabled(False)
        layout.addWidget(self.ready)
        text = "Space ticks, Tab moves on (or Alt with the underlined key); Enter saves. "
        if minimum_left_s > 0:
            text += (
                f"Esketamine: {math.ceil(minimum_left_s / 60)} min of the 2-hour minimum remain; "
                "the ready-to-leave time is recorded for the REMS form all the same."
            )
        else:
            text += "Each tick is recorded with your name."
        hint = QLabel(text)
        hint.setObjectName("dialogHint")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        first = next((b for b in self.items.values() if b.isEnabled()), self.ready)
        first.setFocus()

    def newly_checked(self) -> list[ChecklistItem]:
        """Items ticked in this dialog (not those recorded before)."""
        return [i for i, b in self.items.items() if b.isEnabled() and b.isChecked()]

    def wants_ready(self) -> bool:
        return self.ready.isEnabled() and self.ready.isChecked()

    @override
    def validate(self) -> str:
        if self.wants_ready() and not all(b.isChecked() for b in self.items.values()):
            return "Ready to leave needs every checklist item."
        return ""


_SCALE_TITLES = {
    Scale.MOAAS: "MOAA/S — sedation (0-5)",
    Scale.RASS: "RASS — agitation/sedation (+4 to -5)",
    Scale.CADSS6: "CADSS-6 — dissociation (six items, 0-4 each)",
}


class FreeTextDialog(_Dialog):
    """A note (or the optional text of an observation); `required` refuses an empty note."""

    def __init__(self, title: str, *, required: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.required = required
        self.text_edit = QPlainTextEdit()
        self.text_edit.setTabChangesFocus(True)
        hint = QLabel("The time recorded is when the key was pressed. Ctrl+Enter saves.")
        hint.setObjectName("dialogHint")
        layout = QVBoxLayout(self)
        layout.addWidget(self.text_edit)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.text_edit.setFocus()

    def text(self) -> str:
        return self.text_edit.toPlainText().strip()

    @override
    def validate(self) -> str:
        return "The note is empty." if self.required and not self.text() else ""

    @override
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and (
            event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.accept()
            return
        super().keyPressEvent(event)


__all__ = [
    "CADSS6_ITEMS",
    "CHECKLIST_LABELS",
    "MOAAS_LEVELS",
    "PROTOCOL_LABELS",
    "RASS_LEVELS",
    "BpGateDialog",
    "DischargeDialog",
    "FreeTextDialog",
    "NewSessionDialog",
    "ScaleDialog",
    "split_list",
]
