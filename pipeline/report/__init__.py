"""The report: results read back, statistics, comparisons, figures, the sections, Markdown and
HTML, assembled into reports/."""
