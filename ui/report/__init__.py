"""The study report of a run (PDF) and the exports of its assays, doses and samples.

    report = gather.gather(engine, run_id)          # typed records read from the store
    pdf = build.run_report_pdf(engine, run_id)      # bytes: what `chiptwin report` writes and the panel offers
    frame = tables.table(engine, run_id, What.DOSES) # one of the run's tables, for `chiptwin export`

``kinds`` and ``errors`` are light (the command line imports them at its top); the rest loads
reportlab, matplotlib and the store only when a report is made.
"""
