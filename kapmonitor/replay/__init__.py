"""Replay of recorded sessions: the replay clock, the Session-compatible model, the session browser."""

from kapmonitor.replay.browser import SessionSummary, search_sessions, session_summaries, sort_sessions
from kapmonitor.replay.clock import SPEEDS, ReplayClock
from kapmonitor.replay.model import (
    AlarmAt,
    AlarmSpan,
    LinkGap,
    Marker,
    MarkerKind,
    NumericSeries,
    ReplaySession,
    SeriesView,
    WaveformTrack,
    load_markers,
    load_numeric_series,
)

__all__ = [
    "SPEEDS",
    "AlarmAt",
    "AlarmSpan",
    "LinkGap",
    "Marker",
    "MarkerKind",
    "NumericSeries",
    "ReplayClock",
    "ReplaySession",
    "SeriesView",
    "SessionSummary",
    "WaveformTrack",
    "load_markers",
    "load_numeric_series",
    "search_sessions",
    "session_summaries",
    "sort_sessions",
]
