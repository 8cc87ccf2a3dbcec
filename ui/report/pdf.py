"""The study report as PDF (reportlab's platypus): a RunReport laid out in sections, figures inline.

The font is DejaVu Sans from matplotlib's own data (always installed with it): reportlab's built-in
Helvetica has no Ω, and a unit must print as the lab writes it.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ui.report.gather import ChipFit, RunReport
from ui.run_clock import RunClock
from ui.unit_text import quantity

FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
MAX_ROWS = 400  # per table: a report a person reads; the full tables are `chiptwin export`'s job


def utc(t_utc_s: float | None) -> str:
    if t_utc_s is None:
        return "—"
    return datetime.fromtimestamp(t_utc_s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_clock(report: RunReport) -> RunClock:
    run = report.run
    return RunClock(run.clock_rate, run.started_utc_s, run.started_wall_utc_s, timezone.utc)


def clock_of(report: RunReport) -> Callable[[float | None], str]:
    """Times as a person should read them: UTC dates for a real run; run time since the start for
    an accelerated (simulated) run, whose clock runs ahead of any calendar (ui.run_clock)."""
    clock = run_clock(report)
    if not clock.simulated or clock.started_s is None:
        return utc
    return lambda t: "—" if t is None else clock.text(t)


def render(report: RunReport, figure_of: Callable[[ChipFit], bytes | None]) -> bytes:
    """The PDF's bytes; ``figure_of`` draws a chip fit (PNG) or returns None where it cannot."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    _register_fonts()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=1.6 * cm,
        rightMargin=1.6 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.5 * cm,
        title=f"ChipTwin run {report.run.run_id}",
        author="ChipTwin",
        subject=report.run.protocol_name,
    )
    doc.build(_story(report, figure_of, doc.width))
    return buffer.getvalue()


def _register_fonts() -> None:
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


def _story(report: RunReport, figure_of: Callable[[ChipFit], bytes | None], width: float) -> list:
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, Spacer

    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5)
    head = ParagraphStyle("head", parent=body, fontName=BOLD, fontSize=12, leading=16, spaceBefore=10, spaceAfter=4)
    title = ParagraphStyle("title", parent=body, fontName=BOLD, fontSize=16, leading=20)
    fit_head = ParagraphStyle("fit", parent=body, fontName=BOLD, spaceBefore=8, spaceAfter=2)
    run = report.run
    when = clock_of(report)
    story: list = [Paragraph(f"Study report — run {run.run_id}", title), Spacer(1, 6)]

    def section(text: str) -> None:
        story.append(Paragraph(text, head))

    def para(text: str, style: ParagraphStyle = body) -> None:
        story.append(Paragraph(_escape(text), style))

    def table(header: list[str], rows: list[list[str]], what: str) -> None:
        if not rows:
            para(f"No {what}.")
            return
        story.append(_table(header, rows[:MAX_ROWS], small, width))
        if len(rows) > MAX_ROWS:
            para(f"… {len(rows) - MAX_ROWS} more {what} (chiptwin export lists them all).", small)

    hash_note = "matches the stored text" if run.protocol_hash_matches else "DOES NOT match the stored text"
    para(f"Protocol: {run.protocol_name}")
    para(f"Protocol SHA-256: {run.protocol_sha256} ({hash_note})", small)
    para(f"Rig: {run.rig_name}" + (f" — {run.rig_description}" if run.rig_description else ""))
    para(
        f"State: {run.state}; started {run_clock(report).started_text()}; "
        f"ended {run_clock(report).ended_text(run.ended_utc_s, run.ended_wall_utc_s) or '—'}; "
        f"clock rate {run.clock_rate:g} simulated s per wall s"
    )
    para(f"Report made {utc(report.made_utc_s)}", small)

    audit = report.audit
    section("Audit trail")
    if audit.intact:
        anchored = (
            "head not anchored yet" if audit.anchored_seq is None else f"head anchored at entry {audit.anchored_seq}"
        )
        para(
            f"Audit chain status: INTACT — {audit.entries_checked} entries, last hash {audit.last_hash[:16]}…, "
            f"{anchored}; {audit.rows_checked} regulated rows match their entries."
        )
    else:
        para(
            f"Audit chain status: BROKEN — {len(audit.problems)} problems "
            f"({audit.entries_checked} entries checked). Run `chiptwin audit verify`."
        )
        for problem in audit.problems[:20]:
            para(problem, small)

    section(f"Chips ({len(report.chips)})")
    table(
        ["chip", "organ", "cell lot", "cells", "medium volume", "cell volume"],
        [
            [
                c.name,
                c.organ,
                c.cell_lot or "—",
                f"{c.n_cells_million:g} million",
                quantity(c.v_medium_ml, "mL"),
                quantity(c.v_cell_ml, "mL"),
            ]
            for c in report.chips
        ],
        "chips",
    )

    section(f"Doses ({len(report.doses)})")
    intents = ", ".join(f"{n} {state}" for state, n in sorted(report.intent_states.items())) or "none"
    para(f"Dose count: {len(report.doses)} confirmed dose events. Intent log of the run: {intents}.")
    table(
        ["time", "chip", "drug", "amount", "volume", "intent"],
        [
            [
                when(d.t_utc_s),
                d.chip,
                d.drug,
                quantity(d.amount_nmol, "nmol"),
                quantity(d.volume_ml, "mL"),
                f"{d.intent_key} ({d.intent_state})" if d.intent_key else d.intent_state,
            ]
            for d in report.doses
        ],
        "doses",
    )
    if report.open_intents:
        para("Intents that did not end confirmed (a failed dose, or one a person must check):")
        table(
            ["time", "intent", "command", "requested", "state", "error"],
            [
                [
                    when(i.t_utc_s),
                    i.key,
                    i.command,
                    quantity(i.requested_amount, i.amount_unit),
                    i.state,
                    i.error or "—",
                ]
                for i in report.open_intents
            ],
            "open intents",
        )

    section(f"Samples ({len(report.samples)}) and assays ({len(report.assays)})")
    table(
        ["time", "sample", "chip", "volume"],
        [[when(s.t_utc_s), s.label, s.chip, quantity(s.volume_ml, "mL")] for s in report.samples],
        "samples",
    )
    story.append(Spacer(1, 4))
    table(
        ["sample", "chip", "analyte", "value", "LLOQ"],
        [
            [
                a.sample,
                a.chip,
                a.analyte,
                "< LLOQ" if a.below_lloq else quantity(a.value, a.unit),
                quantity(a.lloq, a.unit),
            ]
            for a in report.assays
        ],
        "assay results",
    )

    section(f"Alarms ({len(report.alarms)})")
    table(
        ["time", "severity", "source", "message", "acknowledged"],
        [
            [
                when(a.t_utc_s),
                a.severity,
                a.source,
                a.message,
                f"{a.acknowledged_by}: {a.ack_comment}" if a.acknowledged_by else "open",
            ]
            for a in report.alarms
        ],
        "alarms",
    )

    section(f"Fits ({len(report.fits)} chip fits)")
    para(
        "Estimates with their 95 % intervals (from the covariance of the log parameters); "
        "figures: data, prediction and its 90 % band, for each chip's latest fit.",
        small,
    )
    latest = {f.chip: f for f in report.fits}  # fits come oldest first
    for fit in report.fits:
        para(
            f"Fit {fit.fit_id}{' — chip ' + fit.chip if fit.chip else ''}: {fit.model}, {fit.method}, "
            f"{when(fit.created_utc_s)}; converged: {'yes' if fit.converged else 'NO'}; "
            f"−2LL {quantity(fit.minus2ll, None)}; {fit.n_observations or '—'} observations",
            fit_head,
        )
        table(
            ["parameter", "estimate", "95 % interval", "RSE"],
            [
                [
                    e.name,
                    quantity(e.estimate, e.unit),
                    _interval(e.low95, e.high95, e.unit),
                    "—" if e.rse_percent is None else f"{e.rse_percent:.3g} %",
                ]
                for e in fit.estimates
            ],
            "estimates",
        )
        for warning in fit.warnings:
            para(f"warning: {warning}", small)
        if latest.get(fit.chip) is fit:
            _figure(story, figure_of(fit), width, small)

    section(f"Proposals and decisions ({len(report.proposals)})")
    for p in report.proposals:
        gain = "—" if p.expected_information_gain is None else f"{p.expected_information_gain:.3g}"
        para(
            f"Proposal {p.proposal_id}: {p.status}; made {when(p.created_utc_s)}; design utility {gain} "
            "(log-det ratio of the posterior covariance, dimensionless)"
        )
        para(p.design.replace("\n", "; "), small)
        for d in p.decisions:
            how = "signed e-signature" if d.signed else "unsigned (policy)"
            para(f"{d.decision} by {d.decided_by} at {when(d.t_utc_s)}, {how}: {d.reason or 'no reason given'}", small)
        if not p.decisions:
            para("no decision yet", small)
    if not report.proposals:
        para("No proposals.")
    return story


def _interval(low: float | None, high: float | None, unit: str) -> str:
    if low is None or high is None:
        return "none (covariance step failed)"
    return f"{quantity(low, None)} – {quantity(high, unit)}"


def _figure(story: list, png: bytes | None, width: float, style) -> None:
    from reportlab.lib.utils import ImageReader
    from reportlab.platypus import Image, Paragraph

    if png is None:
        story.append(Paragraph("(no figure: the store holds no data this fit can be drawn against)", style))
        return
    w, h = ImageReader(io.BytesIO(png)).getSize()
    scale = min(1.0, width / w)
    story.append(Image(io.BytesIO(png), width=w * scale, height=h * scale))


def _table(header: list[str], rows: list[list[str]], style, width: float):
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    cells = [[Paragraph(f"<b>{_escape(h)}</b>", style) for h in header]]
    cells += [[Paragraph(_escape(str(v)), style) for v in row] for row in rows]
    table = Table(cells, repeatRows=1, colWidths=[width / len(header)] * len(header))
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
