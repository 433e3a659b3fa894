"""Where results are shown: tables (report.tables), JSON rows (report.rows), plots (report.plots)
and the projection of lab measurements to real scale (report.project). The CLI and the scripts
print through here; experiments hand it records."""
