"""The KAP session workflow: phases, the pre-dose BP gate, dosing, the BP schedule and discharge."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from kapmonitor.alarms import AlarmEngine, TechnicalCondition
from kapmonitor.clock import Clock
from kapmonitor.measurements import BloodPressure

# --- numbers from kap-session.md ------------------------------------------------------------------
#: One intranasal esketamine device is 28 mg (56 mg = 2 devices, 84 mg = 3). kap-session.md "Dosing".
ESKETAMINE_DEVICE_MG = 28.0
#: Rest between two esketamine devices. kap-session.md "Dosing".
DEVICE_REST_S = 5 * 60.0
#: Above 140/90 mmHg the esketamine label asks to weigh delaying the dose. kap-session.md "Pre-dose".
BP_GATE_SYSTOLIC = 140.0
BP_GATE_DIASTOLIC = 90.0
#: The BP rise peaks around 40 min after the dose; the label asks BP at ~40 min. kap-session.md.
FIRST_BP_AFTER_DOSE_S = 40 * 60.0
#: A reading this long before the 40-minute mark already counts as the 40-minute reading.
FIRST_BP_EARLY_TOLERANCE_S = 5 * 60.0
#: After the 40-minute reading, BP every N minutes. 15 min is the slow end of procedural sedation's
#: 5-15 min (kap-session.md "Monitoring"): the label asks only "as warranted" after 40 min, and a cuff
#: inflating every 5 min disturbs a therapy session; IV clinics that chart every 10 min configure 10.
DEFAULT_BP_INTERVAL_S = 15 * 60.0
#: Esketamine: monitor at least 2 hours from the first device. kap-session.md "Recovery and discharge".
ESKETAMINE_MINIMUM_S = 2 * 60 * 60.0


class WorkflowError(RuntimeError):
    """An action the session's state does not allow (the message says why)."""


class Phase(StrEnum):
    PREPARATION = "preparation"
    BASELINE = "baseline"
    DOSING = "dosing"
    MONITORING = "monitoring"
    RECOVERY = "recovery"
    DISCHARGE = "discharge"
    ENDED = "ended"
    CANCELLED = "cancelled"


#: The allowed phase transitions (cancel is possible until the first dose).
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PREPARATION: frozenset({Phase.BASELINE, Phase.CANCELLED}),
    Phase.BASELINE: frozenset({Phase.DOSING, Phase.CANCELLED}),
    Phase.DOSING: frozenset({Phase.MONITORING, Phase.CANCELLED}),
    Phase.MONITORING: frozenset({Phase.RECOVERY}),
    Phase.RECOVERY: frozenset({Phase.DISCHARGE}),
    Phase.DISCHARGE: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
    Phase.CANCELLED: frozenset(),
}


class TreatmentProtocol(StrEnum):
    """The treatment protocol (kap-session.md "Preparation")."""

    ESKETAMINE_IN = "esketamine_intranasal"
    KETAMINE_IV = "ketamine_iv"
    KETAMINE_IM = "ketamine_im"
    KETAMINE_SL = "ketamine_sublingual"

    @property
    def route(self) -> str:
        return _ROUTES[self]


_ROUTES = {
    TreatmentProtocol.ESKETAMINE_IN: "intranasal",
    TreatmentProtocol.KETAMINE_IV: "intravenous",
    TreatmentProtocol.KETAMINE_IM: "intramuscular",
    TreatmentProtocol.KETAMINE_SL: "sublingual",
}


@dataclass(frozen=True, slots=True)
class SessionDetails:
    """What is known before the session starts (new-session data)."""

    patient: str  # pseudonymous id
    clinicians: tuple[str, ...]
    protocol: TreatmentProtocol
    planned_dose_mg: float | None
    route: str
    lot: str = ""
    concomitant: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.patient.strip():
            raise ValueError("a patient (pseudonymous id) is required")
        if not self.clinicians or not all(c.strip() for c in self.clinicians):
            raise ValueError("at least one clinician is required")
        TreatmentProtocol(self.protocol)
        if self.planned_dose_mg is not None and not self.planned_dose_mg > 0:
            raise ValueError("the planned dose must be positive")
        if (
            self.protocol == TreatmentProtocol.ESKETAMINE_IN
            and self.planned_dose_mg is not None
            and not math.isclose(self.planned_dose_mg / ESKETAMINE_DEVICE_MG, self.planned_devices or 0)
        ):
            raise ValueError(
                f"an esketamine dose is a whole number of {ESKETAMINE_DEVICE_MG:g} mg devices, "
                f"not {self.planned_dose_mg:g} mg"
            )

    @property
    def planned_devices(self) -> int | None:
        """Esketamine: how many 28 mg devices the planned dose is (None otherwise)."""
        if self.protocol != TreatmentProtocol.ESKETAMINE_IN or self.planned_dose_mg is None:
            return None
        return round(self.planned_dose_mg / ESKETAMINE_DEVICE_MG)


class GateChoice(StrEnum):
    PROCEED = "proceed"
    DELAY = "delay"
    CANCEL = "cancel"


class ChecklistItem(StrEnum):
    """Discharge checklist (kap-session.md "Recovery and discharge")."""

    SEDATION_RESOLVED = "sedation_resolved"
    DISSOCIATION_RESOLVED = "dissociation_resolved"
    RESPIRATORY_DEPRESSION_RESOLVED = "respiratory_depression_resolved"
    VITALS_IN_RANGE = "vitals_in_range"


DecisionKind = Literal[
    "baseline", "bp_gate", "rest_override", "extra_dose_override", "checklist", "ready_to_leave", "early_end"
]


#: The source of the "BP reading due" technical alarm (the schedule, not a device): its message
#: reads "BP reading due" alone.
BP_DUE_SOURCE = ""


class BpDueAlarm:
    """Keeps the low-priority "BP reading due" technical alarm in step with a workflow's BP schedule
    (issue 5; kap-session.md "Monitoring", alarms.md: a BP series must never stop silently).

    update() raises it once the schedule says a reading is due (40 min after the first dose, then
    N min after the last live reading) and clears it when a live reading resets the schedule or
    the session ends. Call it on the session's tick (about once a second) and after each reading
    or workflow action; it reads only the workflow's injected clock, and re-raising is idempotent.
    """

    def __init__(self, workflow: SessionWorkflow, alarms: AlarmEngine) -> None:
        self._workflow = workflow
        self._alarms = alarms

    def update(self) -> bool:
        """Raise or clear the alarm from the schedule now; returns whether a reading is due."""
        detail = self._workflow.bp_due_text()
        self._alarms.set_technical(TechnicalCondition.BP_DUE, BP_DUE_SOURCE, bool(detail), detail)
        return bool(detail)

    @property
    def active(self) -> bool:
        return self._alarms.technical_active(TechnicalCondition.BP_DUE, BP_DUE_SOURCE)


# --- records: what each action returns for the log ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class PhaseChange:
    from_phase: Phase
    to_phase: Phase
    who: str
    mono: float
    wall: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """A recorded clinical decision or workflow fact: `kind` says which, `choice` what was chosen."""

    kind: DecisionKind
    choice: str
    reason: str
    who: str
    mono: float
    wall: float
    detail: str = ""  # e.g. "152/94" for a baseline reading


@dataclass(frozen=True, slots=True)
class Dose:
    """A dose given (an esketamine device, or one ketamine dose); logged as a 'dose_given' observation."""

    number: int  # 1, 2, 3... within the session
    mg: float | None
    who: str
    mono: float
    wall: float
    detail: str = ""


Record = PhaseChange | Decision | Dose


@dataclass(slots=True)
class _Baseline:
    systolic: float
    diastolic: float
    wall: float
    decision: GateChoice | None = None


@dataclass(slots=True)
class _State:
    phase: Phase = Phase.PREPARATION
    timeline: list[tuple[Phase, float, float]] = field(default_factory=list)  # (phase, mono, wall)
    baseline: _Baseline | None = None
    doses: list[Dose] = field(default_factory=list)
    checklist: dict[ChecklistItem, str] = field(default_factory=dict)  # item -> who
    ready_mono: float | None = None
    ready_wall: float | None = None
    last_bp_mono: float | None = None
    last_bp_wall: float | None = None


def _fmt_bp(sys: float, dia: float) -> str:
    return f"{sys:.0f}/{dia:.0f}"


def format_elapsed(seconds: float | None) -> str:
    """The session clock's text: 'T+00:42' (hours:minutes since the dose), 'T+--:--' before it."""
    if seconds is None:
        return "T+--:--"
    minutes = int(max(0.0, seconds) // 60)
    return f"T+{minutes // 60:02d}:{minutes % 60:02d}"


class SessionWorkflow:
    """One session's workflow as a pure state machine on an injected Clock.

    Each action checks the state, raises WorkflowError when it is not allowed, and returns the
    records to write to the session log (SessionLog.write); nothing here touches storage.
    `restore()` rebuilds the state from those records after a crash.
    """

    def __init__(
        self,
        details: SessionDetails,
        clock: Clock,
        *,
        bp_interval_s: float = DEFAULT_BP_INTERVAL_S,
    ) -> None:
        if bp_interval_s <= 0:
            raise ValueError("the BP interval must be positive")
        self._details = details
        self._clock = clock
        self._bp_interval = bp_interval_s
        self._s = _State()
        self._s.timeline.append((Phase.PREPARATION, clock.monotonic(), clock.wall()))

    # -- state -----------------------------------------------------------------------------
    @property
    def details(self) -> SessionDetails:
        return self._details

    @property
    def phase(self) -> Phase:
        return self._s.phase

    @property
    def timeline(self) -> list[tuple[Phase, float]]:
        """(phase, UTC wall time it began), in order: the visible session timeline."""
        return [(p, w) for p, _m, w in self._s.timeline]

    @property
    def doses(self) -> tuple[Dose, ...]:
        return tuple(self._s.doses)

    @property
    def is_esketamine(self) -> bool:
        return self._details.protocol == TreatmentProtocol.ESKETAMINE_IN

    def _stamp(self) -> tuple[float, float]:
        return self._clock.monotonic(), self._clock.wall()

    def _move(self, to: Phase, who: str, detail: str = "") -> PhaseChange:
        if to not in TRANSITIONS[self._s.phase]:
            raise WorkflowError(f"cannot go from {self._s.phase.value} to {to.value}")
        mono, wall = self._stamp()
        return PhaseChange(self._s.phase, to, who, mono, wall, detail)

    def _apply(self, rec: Record) -> None:
        """Change the state by one record (used by the actions and by restore())."""
        s = self._s
        if isinstance(rec, PhaseChange):
            s.phase = rec.to_phase
            s.timeline.append((rec.to_phase, rec.mono, rec.wall))
        elif isinstance(rec, Dose):
            s.doses.append(rec)
        elif rec.kind == "baseline":
            sys_txt, dia_txt = rec.detail.split("/")
            s.baseline = _Baseline(float(sys_txt), float(dia_txt), rec.wall)
        elif rec.kind == "bp_gate" and s.baseline is not None:
            s.baseline.decision = GateChoice(rec.choice)
        elif rec.kind == "checklist":
            s.checklist[ChecklistItem(rec.choice)] = rec.who
        elif rec.kind == "ready_to_leave":
            s.ready_mono, s.ready_wall = rec.mono, rec.wall

    def _do(self, *records: Record) -> list[Record]:
        for rec in records:
            self._apply(rec)
        return list(records)

    # -- preparation and baseline ------------------------------------------------------------
    def start_baseline(self, who: str) -> list[Record]:
        return self._do(self._move(Phase.BASELINE, who))

    def record_baseline(self, bp: BloodPressure, who: str) -> list[Record]:
        """Take `bp` as the pre-dose baseline (a repeat replaces it, and needs its own decision)."""
        if self._s.phase != Phase.BASELINE:
            raise WorkflowError(f"a baseline is recorded in the baseline phase, not {self._s.phase.value}")
        if bp.stored:
            raise WorkflowError("a reading from the cuff's memory cannot be the baseline")
        if bp.systolic is None or bp.diastolic is None:
            raise WorkflowError("the reading has no valid systolic/diastolic")
        self.note_bp(bp)
        mono, wall = self._stamp()
        detail = _fmt_bp(bp.systolic, bp.diastolic)
        return self._do(Decision("baseline", "taken", "", who, mono, wall, detail))

    @property
    def baseline(self) -> tuple[float, float] | None:
        b = self._s.baseline
        return None if b is None else (b.systolic, b.diastolic)

    @property
    def needs_decision(self) -> bool:
        """The baseline is above 140/90 mmHg and no decision was recorded for it."""
        b = self._s.baseline
        return b is not None and b.decision is None and self._above_gate(b)

    @staticmethod
    def _above_gate(b: _Baseline) -> bool:
        return b.systolic > BP_GATE_SYSTOLIC or b.diastolic > BP_GATE_DIASTOLIC

    def decide(self, choice: GateChoice | str, reason: str, who: str) -> list[Record]:
        """Record the clinician's decision on a baseline above 140/90: proceed (reason), delay, cancel."""
        choice = GateChoice(choice)
        b = self._s.baseline
        if self._s.phase != Phase.BASELINE or b is None or not self._above_gate(b):
            raise WorkflowError("no baseline above 140/90 mmHg awaits a decision")
        if b.decision is not None:
            raise WorkflowError(
                f"this baseline already has a decision ({b.decision.value}); repeat the reading"
            )
        if choice == GateChoice.PROCEED and not reason.strip():
            raise WorkflowError("proceeding above 140/90 mmHg needs a reason")
        mono, wall = self._stamp()
        gate = Decision("bp_gate", choice.value, reason, who, mono, wall, _fmt_bp(b.systolic, b.diastolic))
        if choice == GateChoice.CANCEL:
            return self._do(gate, self._move(Phase.CANCELLED, who, f"BP {gate.detail}: {reason}".strip()))
        return self._do(gate)

    def can_dose(self) -> tuple[bool, str]:
        """Whether dosing may start, and if not, why."""
        b = self._s.baseline
        if b is None:
            return False, "a pre-dose baseline BP is required"
        if self._above_gate(b):
            if b.decision is None:
                return False, "baseline above 140/90 mmHg: record a decision"
            if b.decision != GateChoice.PROCEED:
                return False, f"the decision was to {b.decision.value}; take a new baseline reading"
        return True, ""

    def start_dosing(self, who: str) -> list[Record]:
        if self._s.phase == Phase.BASELINE:
            ok, why = self.can_dose()
            if not ok:
                raise WorkflowError(why)
        return self._do(self._move(Phase.DOSING, who))

    def cancel(self, reason: str, who: str) -> list[Record]:
        """Cancel the session before any dose (after a dose it is ended, not cancelled)."""
        if self._s.doses:
            raise WorkflowError("a dose was given: the session is ended, not cancelled")
        if not reason.strip():
            raise WorkflowError("cancelling needs a reason")
        return self._do(self._move(Phase.CANCELLED, who, reason))

    # -- dosing --------------------------------------------------------------------------------
    def rest_remaining(self) -> float:
        """Esketamine: seconds left of the 5-minute rest after the last device (0 when none)."""
        if not self.is_esketamine or not self._s.doses:
            return 0.0
        since = self._clock.monotonic() - self._s.doses[-1].mono
        return max(0.0, DEVICE_REST_S - since)

    def log_device(self, who: str, *, override_reason: str = "") -> list[Record]:
        """Esketamine: log one 28 mg nasal device. Refused during the 5-minute rest or beyond the
        planned dose unless `override_reason` is given (then the override is recorded)."""
        if not self.is_esketamine:
            raise WorkflowError("nasal devices are logged for intranasal esketamine only; use log_dose")
        if self._s.phase != Phase.DOSING:
            raise WorkflowError(f"devices are logged in the dosing phase, not {self._s.phase.value}")
        out: list[Record] = []
        mono, wall = self._stamp()
        rest = self.rest_remaining()
        if rest > 0:
            if not override_reason.strip():
                raise WorkflowError(f"{math.ceil(rest)} s of the 5-minute rest between devices remain")
            out.append(
                Decision("rest_override", "override", override_reason, who, mono, wall, f"{rest:.0f} s left")
            )
        number = len(self._s.doses) + 1
        planned = self._details.planned_devices
        if planned is not None and number > planned:
            if not override_reason.strip():
                raise WorkflowError(
                    f"the planned dose is {planned} device(s); device {number} needs a reason"
                )
            out.append(
                Decision(
                    "extra_dose_override", "override", override_reason, who, mono, wall, f"device {number}"
                )
            )
        of = "" if planned is None else f" of {planned}"
        out.append(Dose(number, ESKETAMINE_DEVICE_MG, who, mono, wall, f"device {number}{of}"))
        return self._do(*out)

    def log_dose(self, who: str, *, mg: float | None = None, detail: str = "") -> list[Record]:
        """Ketamine (IV, IM, sublingual): log a dose (IV: detail 'infusion start' / 'infusion stop')."""
        if self.is_esketamine:
            raise WorkflowError("esketamine is logged device by device: use log_device")
        if self._s.phase not in (Phase.DOSING, Phase.MONITORING):
            raise WorkflowError(f"doses are logged while dosing or monitoring, not in {self._s.phase.value}")
        if mg is not None and not mg > 0:
            raise WorkflowError("a dose must be positive")
        mono, wall = self._stamp()
        return self._do(Dose(len(self._s.doses) + 1, mg, who, mono, wall, detail))

    @property
    def first_dose_wall(self) -> float | None:
        return self._s.doses[0].wall if self._s.doses else None

    def dose_elapsed(self) -> float | None:
        """Seconds since the first dose (the session clock), None before it."""
        if not self._s.doses:
            return None
        return self._clock.monotonic() - self._s.doses[0].mono

    def clock_text(self) -> str:
        return format_elapsed(self.dose_elapsed())

    def start_monitoring(self, who: str) -> list[Record]:
        if not self._s.doses:
            raise WorkflowError("no dose has been logged")
        return self._do(self._move(Phase.MONITORING, who))

    # -- BP schedule ------------------------------------------------------------------------------
    def note_bp(self, bp: BloodPressure) -> None:
        """Feed a cuff reading; a live (non-stored) valid one resets the schedule."""
        if bp.stored or bp.systolic is None or bp.diastolic is None:
            return
        if self._s.last_bp_mono is None or bp.mono >= self._s.last_bp_mono:
            self._s.last_bp_mono, self._s.last_bp_wall = bp.mono, bp.wall

    def last_bp_age(self) -> float | None:
        """Seconds since the last live BP reading (None if none)."""
        if self._s.last_bp_mono is None:
            return None
        return self._clock.monotonic() - self._s.last_bp_mono

    def due_at(self) -> float | None:
        """Monotonic time the next BP is due: 40 min after the first dose until a reading is taken
        from 35 min on, then N minutes after the last reading. None before the dose or after the end."""
        if not self._s.doses or self._s.phase in (Phase.ENDED, Phase.CANCELLED):
            return None
        last = self._s.last_bp_mono
        if last is None or self._first_bp_pending():
            return self._s.doses[0].mono + FIRST_BP_AFTER_DOSE_S
        return last + self._bp_interval

    def _first_bp_pending(self) -> bool:
        """No live reading yet counts as the 40-minute one (none from 35 min after the dose on)."""
        anchor = self._s.doses[0].mono + FIRST_BP_AFTER_DOSE_S
        last = self._s.last_bp_mono
        return last is None or last < anchor - FIRST_BP_EARLY_TOLERANCE_S

    def is_due(self) -> bool:
        due = self.due_at()
        return due is not None and self._clock.monotonic() >= due

    def bp_due_text(self) -> str:
        """Since when a reading is due, on the dose clock ('since T+00:40'): the alarm's detail,
        short enough for the alarm bar; '' when none is due now."""
        due = self.due_at()
        if due is None or self._clock.monotonic() < due:
            return ""
        return f"since {format_elapsed(due - self._s.doses[0].mono)}"

    # -- recovery and discharge ---------------------------------------------------------------------
    def start_recovery(self, who: str) -> list[Record]:
        return self._do(self._move(Phase.RECOVERY, who))

    def start_discharge(self, who: str) -> list[Record]:
        return self._do(self._move(Phase.DISCHARGE, who))

    def check(self, item: ChecklistItem | str, who: str, note: str = "") -> list[Record]:
        item = ChecklistItem(item)
        if self._s.phase not in (Phase.RECOVERY, Phase.DISCHARGE):
            raise WorkflowError("the discharge checklist is completed in recovery or discharge")
        mono, wall = self._stamp()
        return self._do(Decision("checklist", item.value, note, who, mono, wall))

    @property
    def checklist(self) -> dict[ChecklistItem, bool]:
        return {i: i in self._s.checklist for i in ChecklistItem}

    def minimum_remaining(self) -> float:
        """Esketamine: seconds left of the 2-hour minimum from the first device (0 otherwise)."""
        elapsed = self.dose_elapsed()
        if not self.is_esketamine or elapsed is None:
            return 0.0
        return max(0.0, ESKETAMINE_MINIMUM_S - elapsed)

    def ready_to_leave(self, who: str) -> list[Record]:
        """Record when the patient was ready to leave (may be before the 2-hour minimum: the REMS
        form asks exactly that); the checklist must be complete."""
        if self._s.phase not in (Phase.RECOVERY, Phase.DISCHARGE):
            raise WorkflowError("ready to leave is recorded in recovery or discharge")
        missing = [i.value for i, done in self.checklist.items() if not done]
        if missing:
            raise WorkflowError(f"discharge checklist incomplete: {', '.join(missing)}")
        if self._s.ready_wall is not None:
            raise WorkflowError("ready to leave is already recorded")
        mono, wall = self._stamp()
        return self._do(Decision("ready_to_leave", "ready", "", who, mono, wall))

    @property
    def ready_wall(self) -> float | None:
        return self._s.ready_wall

    def end(self, who: str, *, override_reason: str = "") -> list[Record]:
        """End the session (discharge → ended). Esketamine before 2 h, or without ready-to-leave,
        only with `override_reason` (recorded)."""
        problems = []
        if self.minimum_remaining() > 0:
            problems.append(f"{math.ceil(self.minimum_remaining() / 60)} min of the 2-hour minimum remain")
        if self._s.ready_wall is None:
            problems.append("ready to leave is not recorded")
        move = self._move(Phase.ENDED, who)
        if problems and not override_reason.strip():
            raise WorkflowError("; ".join(problems))
        out: list[Record] = []
        if problems:
            out.append(
                Decision(
                    "early_end", "override", override_reason, who, move.mono, move.wall, "; ".join(problems)
                )
            )
        out.append(move)
        return self._do(*out)

    # -- crash recovery -------------------------------------------------------------------------------
    def restore(
        self,
        records: Iterable[Record],
        bp_readings: Sequence[BloodPressure] = (),
        *,
        started_wall: float | None = None,
        started_mono: float | None = None,
        last_seen: tuple[float, float] | None = None,
    ) -> None:
        """Rebuild the state from a session's records (in log order) after a restart.

        Durations (dose clock, rest, BP schedule) come from the records' own `mono`, never from
        their wall times: a wall-clock step during the session does not move them.
        `last_seen` is (mono, wall) of the newest row the records' run wrote, when that run is
        not this clock's (a restart): everything is then moved onto this clock's timeline by
        timeline_shift(). Without it the records' mono are taken to be on this clock's timeline
        already (the same run, or moved there by the storage: storage.session_log.restore_workflow).
        `started_wall`/`started_mono` are when the session (its preparation phase) began.
        """
        now_mono, now_wall = self._clock.monotonic(), self._clock.wall()
        shift = 0.0 if last_seen is None else timeline_shift(*last_seen, now_mono, now_wall)
        recs = list(records)
        start_wall = started_wall if started_wall is not None else (recs[0].wall if recs else now_wall)
        start_mono = started_mono if started_mono is not None else (recs[0].mono if recs else now_mono)
        self._s = _State()
        self._s.timeline.append((Phase.PREPARATION, start_mono + shift, start_wall))
        for rec in recs:
            self._apply(replace(rec, mono=rec.mono + shift))
        for bp in bp_readings:
            self.note_bp(replace(bp, mono=bp.mono + shift))


def timeline_shift(last_mono: float, last_wall: float, now_mono: float, now_wall: float) -> float:
    """What to add to a monotonic time of an earlier run to put it on the current run's timeline.

    A monotonic clock has an arbitrary origin per boot (per process for some clocks), so across
    a restart only the wall clock spans the gap: the earlier run's newest row (`last_mono`,
    `last_wall`) is placed `now_wall - last_wall` before now, and every earlier time keeps its
    monotonic distance to that row. A wall-clock step while the earlier run was recording does
    not move anything; only a step during the gap itself (when nothing ran to see it) can.
    """
    return (now_mono - (now_wall - last_wall)) - last_mono
