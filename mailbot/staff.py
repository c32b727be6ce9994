"""Staff authentication: a manager's mail is trusted only with proof, never by ``From:``.

``From:`` is whatever the sender typed. A message counts as staff mail only when
(DESIGN.md, "Managers"):

1. it references (In-Reply-To/References) a notification whose Message-ID carries
   an HMAC of the case number made with the server secret, or
2. it was sent to a signed reply address ``support+SUP-123.<hmac>@…``, or
3. it carries an ``Authentication-Results`` header added by a configured trusted
   server (its authserv-id) saying ``dkim=pass`` for a staff domain.

Methods 1 and 2 also say *which case* the mail is about, and that is what it is
threaded to: a manager cannot be tricked into writing into another case by a
token someone else put in the subject.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from mailbot.message import Inbound

_SIGNED_ID = re.compile(r"^<([a-z0-9_]+)-(\d{1,18})\.([a-z_]+)\.([0-9a-f]{16})\.([0-9a-f]{20})@",
                        re.IGNORECASE)
_SIGNED_ADDRESS = re.compile(r"^[^+@]+\+([a-z0-9_]+)-(\d{1,18})\.([0-9a-f]{20})@", re.IGNORECASE)
MAC_HEX = 20  # 80 bits: forging one needs ~2^79 guesses per case


def _mac(secret: bytes, *parts: str) -> str:
    message = "\x00".join(parts).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:MAC_HEX]


def signed_message_id(secret: bytes, prefix: str, number: int, kind: str, domain: str) -> str:
    """A Message-ID for mail to staff that later proves a reply came from its reader."""
    nonce = secrets.token_hex(8)
    mac = _mac(secret, "msgid", prefix.lower(), str(number), kind, nonce)
    return f"<{prefix.lower()}-{number}.{kind}.{nonce}.{mac}@{domain}>"


def verify_message_id(secret: bytes, prefix: str, message_id: str) -> int | None:
    """The case number a signed Message-ID vouches for, or None."""
    match = _SIGNED_ID.match(message_id.strip())
    if not match or match.group(1).lower() != prefix.lower():
        return None
    number, kind, nonce, mac = match.group(2), match.group(3), match.group(4), match.group(5)
    expected = _mac(secret, "msgid", prefix.lower(), number, kind, nonce)
    return int(number) if hmac.compare_digest(expected, mac.lower()) else None


def signed_reply_address(secret: bytes, prefix: str, number: int, support_address: str) -> str:
    """``support+sup-12.<mac>@example.com``: replies to it are the manager's on that case."""
    local, _, domain = support_address.partition("@")
    mac = _mac(secret, "reply", prefix.lower(), str(number))
    return f"{local}+{prefix.lower()}-{number}.{mac}@{domain}"


def verify_reply_address(secret: bytes, prefix: str, address: str) -> int | None:
    match = _SIGNED_ADDRESS.match(address.strip())
    if not match or match.group(1).lower() != prefix.lower():
        return None
    number, mac = match.group(2), match.group(3)
    expected = _mac(secret, "reply", prefix.lower(), number)
    return int(number) if hmac.compare_digest(expected, mac.lower()) else None


@dataclass(frozen=True)
class StaffAuth:
    ok: bool
    method: str  # signed-message-id | signed-reply-address | dkim | none
    reason: str
    case_number: int | None = None  # the case the proof names (None for DKIM)


def authenticate(
    inbound: Inbound,
    *,
    secret: bytes | None,
    prefix: str,
    trusted_authserv_ids: frozenset[str],
    staff_domains: frozenset[str],
) -> StaffAuth:
    """Decide whether a message from a staff address really comes from staff."""
    if secret is not None:
        for reference in reversed(inbound.all_references()):
            number = verify_message_id(secret, prefix, reference)
            if number is not None:
                return StaffAuth(True, "signed-message-id",
                                 f"references our signed notification {reference}", number)
        for address in [*inbound.to, *inbound.cc]:
            number = verify_reply_address(secret, prefix, address.email)
            if number is not None:
                return StaffAuth(True, "signed-reply-address",
                                 f"sent to the signed address {address.email}", number)
    sender = inbound.from_addr.email if inbound.from_addr else ""
    domain = sender.rpartition("@")[2]
    if domain in staff_domains and trusted_authserv_ids:
        for header in inbound.headers.get("authentication-results", []):
            if _dkim_pass(header, trusted_authserv_ids, domain):
                return StaffAuth(True, "dkim", f"dkim=pass for {domain} by a trusted server")
    return StaffAuth(False, "none", "no signed reference, no signed reply address and no "
                     "trusted dkim=pass: From: alone is not proof")


def _dkim_pass(header: str, trusted: frozenset[str], domain: str) -> bool:
    """RFC 8601: ``authserv-id; dkim=pass header.d=example.com; spf=…``."""
    authserv, _, results = header.partition(";")
    ids = authserv.split()
    # Only our own border server's verdict counts; it removes forged copies of its id (RFC 8601).
    if not ids or ids[0].lower() not in trusted:
        return False
    for result in results.split(";"):
        tokens = result.strip().lower().split()
        if not tokens or tokens[0] != "dkim=pass":
            continue
        for token in tokens[1:]:
            if token.startswith(("header.d=", "header.i=")):
                value = token.split("=", 1)[1].strip('"').lstrip("@").rpartition("@")[2]
                if value == domain:
                    return True
    return False
