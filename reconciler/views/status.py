"""The remote progress of submitted backfills as terminal text, JSON or Markdown.
Pure functions: data in, text out."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from reconciler import remedies
from reconciler.domain import Health
from reconciler.views.audit import FORMAT_VERSION, dates_text
from reconciler.views.markdown import escape
from reconciler.views.text import Style, date_span, plural, styler, targets_text

if TYPE_CHECKING:
    from reconciler.reports.status import StatusReport, Tracked

_PLAIN = styler(False)
_PHASE_COLORS = {
    "succeeded": "green",
    "running": "cyan",
    "waiting": "cyan",
    "stopped": "yellow",
    "failed": "red",
    "unknown": "yellow",
}
_COUNTED = (Health.RUNNING, Health.WAITING, Health.STOPPED, Health.FAILED)


def instances_text(item: Tracked) -> str:
    """`4/6 succeeded, 1 running, 1 waiting`: of the instances the submission asked for."""
    record, progress = item.record, item.progress
    if progress.error:
        return "-"
    counts = Counter(i.phase for i in progress.instances)
    expected = len(record.targets) * len(record.dates)
    parts = [f"{counts[Health.SUCCEEDED]}/{expected} succeeded"]
    parts += [f"{counts[phase]} {phase}" for phase in _COUNTED if counts[phase]]
    return ", ".join(parts)


def _percent(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _unsettled_note(report: StatusReport) -> list[str]:
    if not report.unsettled:
        return []
    keys = ", ".join(r.key for r in report.unsettled)
    return [
        f"Not shown ({keys}): " + remedies.unknown_outcomes(len(report.unsettled)),
    ]


def text(report: StatusReport, style: Style = _PLAIN) -> str:
    if not report.tracked:
        return "\n".join(["No submitted backfills.", *_unsettled_note(report)])
    header = (
        *("KEY", "PLAN", "REV", "TARGETS", "DATES", "REMOTE ID", "PHASE", "INSTANCES"),
        *("COMPLETE", "SUCCESS"),
    )
    rows = [
        (
            t.record.key,
            t.record.plan,
            str(t.record.revision),
            targets_text(t.record.targets),
            date_span(t.record.dates),
            t.record.remote_id,
            t.progress.phase,
            instances_text(t),
            _percent(t.progress.complete_percent),
            _percent(t.progress.success_percent),
        )
        for t in report.tracked
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    phase = header.index("PHASE")
    lines = [style("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        cells[phase] = style(cells[phase], fg=_PHASE_COLORS[row[phase]])
        lines.append("  ".join(cells).rstrip())
    lines += [
        f"{t.record.key}: could not read its progress: {t.progress.error}"
        for t in report.tracked
        if t.progress.error
    ]
    phases = Counter(t.progress.phase for t in report.tracked)
    lines.append(
        f"\n{plural(len(report.tracked), 'submitted backfill')}: "
        + ", ".join(f"{n} {p}" for p, n in sorted(phases.items()))
        + "."
    )
    lines += _unsettled_note(report)
    return "\n".join(lines)


def json_report(report: StatusReport) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "backfills": [
            {
                "key": t.record.key,
                "plan": t.record.plan,
                "revision": t.record.revision,
                "provider": t.record.provider,
                "region": t.record.region,
                "targets": list(t.record.targets),
                "dates": list(t.record.dates),
                "remote_id": t.record.remote_id,
                "phase": t.progress.phase,
                "complete_percent": t.progress.complete_percent,
                "success_percent": t.progress.success_percent,
                "instances": [
                    {"target": i.target, "date": i.date, "state": i.state, "phase": i.phase}
                    for i in t.progress.instances
                ],
                "error": t.progress.error,
            }
            for t in report.tracked
        ],
        "unsettled": [r.key for r in report.unsettled],
    }


def markdown(report: StatusReport) -> str:
    lines = ["### Backfill status", ""]
    if not report.tracked:
        lines.append("No submitted backfills.")
    else:
        lines += [
            "| Plan | Key | Targets | Dates | Remote id | Phase | Instances | Complete | Success |",
            "|---|---|---|---|---|---|---|--:|--:|",
        ]
        for t in report.tracked:
            cells = [
                escape(f"{t.record.plan} r{t.record.revision}"),
                escape(t.record.key),
                escape(targets_text(t.record.targets)),
                escape(dates_text(t.record.dates)),
                escape(t.record.remote_id),
                f"**{t.progress.phase}**",
                escape(instances_text(t)),
                _percent(t.progress.complete_percent),
                _percent(t.progress.success_percent),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        errors = [t for t in report.tracked if t.progress.error]
        if errors:
            lines.append("")
            lines += [
                f"- `{t.record.key}`: could not read its progress: {escape(t.progress.error)}"
                for t in errors
            ]
    if report.unsettled:
        keys = ", ".join(f"`{r.key}`" for r in report.unsettled)
        lines += ["", f"Not shown ({keys}): " + remedies.unknown_outcomes(len(report.unsettled))]
    return "\n".join(lines) + "\n"
