"""Reports of a run: the terminal summary grouped by cause, the sign-off report
(signoff.json, the data, schema in docs/report-schema.md; signoff.md and signoff.html
rendered from it; matrix pictures; the cause pages it links to), Allure's categories,
environment and executor, and the JUnit suite properties. JUnit and Allure results
themselves are written by pytest and allure-pytest from what the plugin leaves on each
test report: the one-line message, the finding, readable parameters.

Secrets never reach a report: known secret values and secret-shaped text are redacted
everywhere (redaction.py).
"""

from seatrials.reporting.allure import MEASURED
from seatrials.reporting.allure import categories as allure_categories
from seatrials.reporting.html import html_report
from seatrials.reporting.markdown import markdown
from seatrials.reporting.pages import page_html
from seatrials.reporting.records import (
    CheckReport,
    failure_repr,
    finding_html,
    finding_record,
    one_line,
    readable_parameters,
)
from seatrials.reporting.redaction import REDACTED, known_secrets, redact, redact_files
from seatrials.reporting.signoff import RunRecord, cluster_hash, matrices, signoff
from seatrials.reporting.svg import grid_svg, matrix_svg
from seatrials.reporting.terminal import terminal_summary
from seatrials.reporting.writers import cause_url, write_all, write_not_started, write_report

__all__ = ["MEASURED", "REDACTED", "CheckReport", "RunRecord", "allure_categories", "cause_url", "cluster_hash",
           "failure_repr", "finding_html", "finding_record", "grid_svg", "html_report", "known_secrets", "markdown",
           "matrices", "matrix_svg", "one_line", "page_html", "readable_parameters", "redact", "redact_files",
           "signoff", "terminal_summary", "write_all", "write_not_started", "write_report"]
