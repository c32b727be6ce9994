"""sd_notify's wire format, against real AF_UNIX datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mailbot.sdnotify import Notifier


def test_path_socket_receives_ready_and_status(tmp_path: Path) -> None:
    # A filesystem NOTIFY_SOCKET gets "READY=1\nSTATUS=…" as one datagram.
    path = tmp_path / "notify"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.ready("watching 1 mailbox(es)")
        assert server.recv(4096) == b"READY=1\nSTATUS=watching 1 mailbox(es)"
        notifier.close()
    finally:
        server.close()


def test_abstract_socket_and_watchdog_period() -> None:
    # "@name" means the abstract namespace; WATCHDOG_USEC for this pid sets the period.
    name = f"mailbot-sdnotify-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000",
                             "WATCHDOG_PID": str(os.getpid())})
        assert notifier.watchdog_s == 3.0
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
        notifier.close()
    finally:
        server.close()


def test_without_systemd_everything_is_a_no_op() -> None:
    # No NOTIFY_SOCKET (a terminal, a test) and a watchdog meant for another pid: nothing is sent.
    notifier = Notifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert not notifier.enabled and notifier.watchdog_s is None
    assert notifier.ready() is False and notifier.stopping() is False


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    # systemd gone (socket path missing): the send fails quietly, mail handling goes on.
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled and notifier.watchdog() is False
    notifier.close()
