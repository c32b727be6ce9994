"""What each kind of mail's template receives: built in one place from database rows.

The pipeline stores the result in the outbox row at enqueue time (so a resend
renders the same mail), and ``mailbot templates preview --case`` calls the same
functions, so a preview shows exactly what the customer will get. Every string
that can reach a header (subjects, display names) is reduced to one line here,
before any template sees it; the variables are documented in templates/README.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.config import Config
from mailbot.db.models import Case
from mailbot.outbox.render import format_local, one_line


def case_base(case: Case, config: Config) -> dict[str, Any]:
    """The variables every mail about a case has: the case, the customer, where to write."""
    subject = one_line(case.subject)
    return {
        "case": {"token": case.token, "number": case.number, "subject": subject,
                 "service_level": case.service_level, "status": case.status},
        "customer": {"name": one_line(case.customer_name or ""), "email": case.customer_email},
        "subject": subject,
        "timezone": case.timezone,
        "support_address": config.smtp.from_address,
    }


def ack_context(case: Case, received_at: datetime, config: Config) -> dict[str, Any]:
    """The acknowledgement: when we got the mail and the deadlines we promise, in the
    customer's zone and with day and month names in the case's language."""
    return {
        **case_base(case, config),
        "received_at": format_local(received_at, case.timezone, language=case.language),
        "preliminary_due": format_local(case.preliminary_due, case.timezone,
                                        language=case.language),
        "detailed_due": format_local(case.detailed_due, case.timezone, language=case.language),
    }
