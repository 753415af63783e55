"""Reporting: entries, boards (markdown, html, plots), checks, the regression gate, galleries."""
