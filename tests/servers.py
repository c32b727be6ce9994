"""Real mail servers on loopback for the integration tests: a private Dovecot and an SMTP sink.

Why real servers: mailbot's hardest bugs live in the protocol details (UIDVALIDITY, APPENDUID,
IDLE wake-ups, MOVE, servers dying mid-command, 4xx/5xx on DATA). Fakes get those wrong in
exactly the ways that matter, so the integration tests talk to Dovecot and to an aiosmtpd
server, both bound to 127.0.0.1 on free ports and owned by the test process.

This module is plain Python (no pytest) so the benchmark and the demo can use it too.

Public API:
    free_port()                     a free TCP port on 127.0.0.1
    find_dovecot()                  path of the dovecot binary, or None
    Account                         one IMAP login (host, port, username, password, maildir)
    Dovecot                         a private Dovecot instance (start/stop/restart/kill, new_account)
    imap_connect(account)           a logged-in IMAPClient
    imap_append(account, raw, ...)  deliver one message by IMAP APPEND, returns the UID
    imap_append_many(account, ...)  the same over one connection, for bulk loads
    SinkMessage                     one envelope the SMTP sink accepted (or rejected)
    SmtpSink                        an aiosmtpd server that records mail and can be told to fail
"""

from __future__ import annotations

import atexit
import ctypes
import datetime as dt
import email
import email.message
import email.policy
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

LOCALHOST = "127.0.0.1"

#: Where Debian (and most distributions) put the binary; `sbin` is often not on a user's PATH.
DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")

_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)


#: Ports owned by servers of this process even while they are down (a stopped Dovecot comes back
#: on the same port), so free_port() never hands them to another server in the meantime.
_RESERVED_PORTS: set[int] = set()


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that was free a moment ago on `host`.

    The kernel picks it (bind to port 0), so parallel test runs do not collide on a fixed port.
    There is a small race until the server binds it; on loopback that is good enough.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port


def find_dovecot() -> str | None:
    """Return the path of the `dovecot` binary, looking in sbin too (not on a normal user's PATH)."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in DOVECOT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _tail(path: Path, lines: int = 40) -> str:
    """Last `lines` lines of a log file, for error messages that explain themselves."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


def _child_setup() -> None:
    """Child pre-exec hook: own process group, and SIGTERM when the parent dies.

    The process group lets `Dovecot.kill()` take down the master *and* every imap process it
    forked, like a crash of the whole server. PR_SET_PDEATHSIG makes sure a test run killed with
    SIGKILL does not leave an orphaned Dovecot holding its port (Linux only; best effort).
    Note: the signal fires when the *thread* that started Dovecot exits, so start it from the
    main thread or from a thread that lives as long as the server.
    """
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _group_has_live_processes(pgid: int) -> bool:
    """True while a non-zombie process of process group `pgid` exists (reads /proc).

    `os.killpg(pgid, 0)` is no good here: it also succeeds for zombies, and a container's init
    may take seconds to reap the orphans of a killed Dovecot master.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux
        time.sleep(0.1)
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@dataclass(frozen=True)
class Account:
    """One IMAP login on a test Dovecot: everything a mailbot `[[mailboxes]]` entry needs."""

    host: str
    port: int
    username: str
    password: str
    #: The Maildir Dovecot keeps this user's mail in (it exists once the user has logged in).
    maildir: Path

    @property
    def address(self) -> str:
        """A mail address for this mailbox (the reserved `.test` domain never routes anywhere)."""
        return f"{self.username}@example.test"


@dataclass(frozen=True)
class _Identity:
    """Unix users Dovecot runs as; see `Dovecot._pick_identity` for why they differ as root."""

    mail_uid: int
    mail_gid: int
    internal_user: str
    internal_group: str
    login_user: str
    root: bool


class Dovecot:
    """A private Dovecot instance under `workdir`, listening for IMAP on 127.0.0.1:`port`.

    Private means: its own dovecot.conf (nothing from /etc/dovecot), base_dir, state_dir, log file
    and passwd-file, so it never touches or conflicts with a system Dovecot, and several can run
    at once. Plaintext LOGIN over loopback, no TLS.

    A pool of users (`user01`/`pw-user01`, ...) is written at start; `new_account()` hands out the
    next unused one so every test gets an empty mailbox without restarting the server. The pool
    grows by itself when it runs out (Dovecot re-reads its passwd-file when it changes).

    `stop()`, `kill()` and `restart()` simulate outages; mail, users and the port survive them.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        users: int = 64,
        port: int | None = None,
        binary: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        if re.search(r"[\s\"'%#]", str(self.workdir)):
            # Dovecot's config syntax has no robust quoting for these inside `args =` lines.
            raise ValueError(f"Dovecot workdir must not contain spaces, quotes, % or #: {self.workdir}")
        found = binary or find_dovecot()
        if found is None:
            raise FileNotFoundError(
                "dovecot binary not found (looked on PATH and in /usr/sbin); "
                "install it with `make system-deps` or `apt-get install dovecot-imapd`"
            )
        self.binary: str = found
        self.host: str = LOCALHOST
        self.port: int = port if port is not None else free_port()
        _RESERVED_PORTS.add(self.port)
        self.start_timeout = start_timeout
        self.conf_path = self.workdir / "dovecot.conf"
        self.log_path = self.workdir / "dovecot.log"
        self.stderr_path = self.workdir / "dovecot.stderr"
        self.passwd_path = self.workdir / "passwd"
        self.mail_root = self.workdir / "mail"
        self.base_dir = self.workdir / "run"
        self.state_dir = self.workdir / "state"
        self._identity = self._pick_identity()
        self._pool_step = max(1, users)
        self._users: list[str] = []
        self._next_user = 0
        self._probe_password = f"probe-{os.getpid()}-{self.port}"
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False
        self._prepared = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while the Dovecot master process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the Dovecot master (also its process group id), or None when stopped."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> None:
        """Start Dovecot in the foreground and wait until an IMAP LOGIN succeeds.

        Raises RuntimeError with the tail of Dovecot's log when it is not ready in time, so a
        broken configuration explains itself in the test output.
        """
        if self.running:
            return
        self._prepare()
        stderr = open(self.stderr_path, "ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,
                close_fds=True,
            )
        finally:
            stderr.close()
        if not self._atexit_registered:
            atexit.register(self._atexit)
            self._atexit_registered = True
        try:
            self._wait_ready()
        except BaseException:
            self._kill_group()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Shut Dovecot down cleanly (SIGTERM): it disconnects every client, like a service stop."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever survived the master (it should be nothing) goes too, so the port is free.
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL the master and every process it forked: a crash, connections drop mid-command."""
        if self._proc is None:
            return
        self._kill_group()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port; mail and users are kept."""
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        """Start Dovecot if a previous test stopped or killed it and did not bring it back."""
        if not self.running:
            self.start()

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Dovecot's log file (use it in assertion messages)."""
        return _tail(self.log_path, lines)

    # ------------------------------------------------------------------ accounts

    def new_account(self) -> Account:
        """Hand out the next never-used user: an empty mailbox, isolated from other tests.

        Works before start() too (the account is valid once the server runs).
        """
        with self._lock:
            self._prepare()
            if self._next_user >= len(self._users):
                self._grow_pool()
                if self.running:
                    self._wait_until_known(self._users[self._next_user])
            username = self._users[self._next_user]
            self._next_user += 1
        return self.account(username)

    def account(self, username: str) -> Account:
        """The Account of an existing pool user (e.g. to log in again as the same user)."""
        if username not in self._users and username != "probe":
            raise KeyError(f"no such Dovecot test user: {username}")
        password = self._probe_password if username == "probe" else f"pw-{username}"
        return Account(
            host=self.host,
            port=self.port,
            username=username,
            password=password,
            maildir=self.mail_root / username / "Maildir",
        )

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _pick_identity() -> _Identity:
        """Choose the Unix users for Dovecot's processes.

        Not root: everything runs as the current user (Dovecot supports a rootless master).
        Root: Dovecot refuses to open mailboxes as root ("Mail access not allowed for root", and
        a passwd-file with uid 0 is rejected as invalid), so the mail processes run as the
        unprivileged `mail` user (else `nobody`); its internal and login processes use the
        `dovecot` and `dovenull` users the Debian package creates.
        """
        if os.geteuid() != 0:
            uid, gid = os.getuid(), os.getgid()
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError as exc:
                raise RuntimeError(f"uid {uid} has no passwd entry; Dovecot needs a user name") from exc
            try:
                group = grp.getgrgid(gid).gr_name
            except KeyError:
                group = name
            return _Identity(uid, gid, name, group, name, root=False)

        def existing(*names: str) -> pwd.struct_passwd | None:
            for name in names:
                try:
                    return pwd.getpwnam(name)
                except KeyError:
                    continue
            return None

        mail = existing("mail", "nobody")
        if mail is None or mail.pw_uid == 0:
            raise RuntimeError("no unprivileged `mail` or `nobody` user to run Dovecot's mail processes as")
        internal = existing("dovecot") or mail
        login = existing("dovenull", "nobody") or mail
        try:
            internal_group = grp.getgrgid(internal.pw_gid).gr_name
        except KeyError:
            internal_group = internal.pw_name
        return _Identity(
            mail.pw_uid, mail.pw_gid, internal.pw_name, internal_group, login.pw_name, root=True
        )

    def _prepare(self) -> None:
        """Create the directory tree, the config and the user pool (once; restarts keep them)."""
        with self._lock:
            if self._prepared:
                return
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.mail_root.mkdir(exist_ok=True)
            if self._identity.root:
                self._make_traversable(self.mail_root)
            self.conf_path.write_text(self._config_text())
            self._grow_pool()
            self._prepared = True

    def _make_traversable(self, path: Path) -> None:
        """Give `path` and its ancestors the search bit for others (o+x, not read).

        As root the mail processes run as `mail` and the auth process as `dovecot`; they must be
        able to walk down to the homes and the passwd-file. pytest's temp dirs are 0700, so we add
        o+x to the ones we own. Nothing becomes listable, and pytest resets its base dir to 0700
        at the start of the next session anyway.
        """
        for directory in [path, *path.parents]:
            st = directory.stat()
            if st.st_mode & stat.S_IXOTH:
                continue
            if st.st_uid != os.geteuid():
                raise RuntimeError(
                    f"{directory} is not searchable by Dovecot's unprivileged users and is not ours to chmod"
                )
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _grow_pool(self) -> None:
        """Add `users` more pool users and rewrite the passwd-file (caller holds the lock).

        The file is replaced atomically; Dovecot's passwd-file driver notices the change on the
        next lookup, so a running server learns the new users without a restart.
        """
        start = len(self._users) + 1
        width = max(2, len(str(start + self._pool_step - 1)))
        new = [f"user{i:0{width}d}" for i in range(start, start + self._pool_step)]
        for username in [*new, "probe"]:
            home = self.mail_root / username
            if not home.exists():
                home.mkdir(mode=0o700)
                if self._identity.root:
                    os.chown(home, self._identity.mail_uid, self._identity.mail_gid)
        self._users.extend(new)
        uid, gid = self._identity.mail_uid, self._identity.mail_gid
        lines = [
            f"{name}:{{PLAIN}}{self.account(name).password}:{uid}:{gid}::{self.mail_root / name}::"
            for name in [*self._users, "probe"]
        ]
        tmp = self.passwd_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)  # read by the auth process, which runs as `dovecot` when we are root
        os.replace(tmp, self.passwd_path)

    def _wait_until_known(self, username: str, timeout: float = 5.0) -> None:
        """Wait until the running Dovecot accepts a LOGIN of a user just added to the passwd-file.

        Dovecot's passwd-file driver re-checks the file at most once per second, so a user added
        a moment ago can be unknown for up to a second. A LOGIN alone creates no Maildir, so the
        mailbox stays empty for the test that gets it.
        """
        account = self.account(username)
        deadline = time.monotonic() + timeout
        # Let the second tick over first: earlier it cannot work, and each failure costs 0.5 s.
        time.sleep(1.02 - (time.time() % 1.0))
        while True:
            try:
                imap_connect(account, timeout=2.0).logout()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(self._failure_text(f"new user {username} not accepted: {exc!r}")) from exc
                time.sleep(0.1)

    def _config_text(self) -> str:
        """A self-contained dovecot.conf (no !include of /etc/dovecot: the system config is not ours)."""
        ident = self._identity
        lines = [
            "# Generated by tests/servers.py for one test session; do not edit.",
            f"base_dir = {self.base_dir}",
            f"state_dir = {self.state_dir}",
            f"instance_name = mailbot-test-{self.port}",
            "listen = 127.0.0.1",
            "protocols = imap",
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            # Wrong-password tests should not each cost the default 2 s penalty.
            "auth_failure_delay = 0",
            f"log_path = {self.log_path}",
            f"info_log_path = {self.log_path}",
            f"default_internal_user = {ident.internal_user}",
            f"default_internal_group = {ident.internal_group}",
            f"default_login_user = {ident.login_user}",
            f"first_valid_uid = {ident.mail_uid}",
            f"last_valid_uid = {ident.mail_uid}",
            f"first_valid_gid = {ident.mail_gid}",
            f"last_valid_gid = {ident.mail_gid}",
            "mail_location = maildir:~/Maildir",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.passwd_path}",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.passwd_path}",
            "}",
            "protocol imap {",
            # The default (10 per user and IP) is too low for a daemon + test helpers + benches.
            "  mail_max_userip_connections = 512",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
        ]
        if not ident.root:
            lines.append("  chroot =")  # chroot needs root; a rootless Dovecot must not try it
        lines += [
            "}",
            "service anvil {",
            # Every test logs in from 127.0.0.1, so Dovecot's per-IP auth penalty would make one
            # wrong-password test delay every later login of the session by 2-15 s. The auth
            # process disables the penalty when it cannot connect to this socket.
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
        ]
        if not ident.root:
            lines.append("  chroot =")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        """Poll until the port accepts connections and a LOGIN works, or fail with the log tail.

        An open port alone is not enough: the auth process may still be starting, and the first
        test would then see a spurious "temporary authentication failure".
        """
        deadline = time.monotonic() + self.start_timeout
        probe = self.account("probe")
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise RuntimeError(self._failure_text(f"Dovecot exited during start-up (status {code})"))
            try:
                client = IMAPClient(self.host, self.port, ssl=False, timeout=2.0)
                try:
                    client.login(probe.username, probe.password)
                finally:
                    try:
                        client.logout()
                    except Exception:
                        client.shutdown()
                return
            except Exception as exc:  # not ready yet: refused, reset, auth process starting...
                last_error = exc
                time.sleep(0.05)
        raise RuntimeError(
            self._failure_text(
                f"Dovecot not ready on {self.host}:{self.port} within {self.start_timeout:.0f}s "
                f"(last error: {last_error!r})"
            )
        )

    def _failure_text(self, headline: str) -> str:
        return (
            f"{headline}\n--- {self.log_path} (tail) ---\n{_tail(self.log_path)}\n"
            f"--- {self.stderr_path} (tail) ---\n{_tail(self.stderr_path)}\n"
            f"--- config: {self.conf_path}"
        )

    def _kill_group(self) -> None:
        """SIGKILL Dovecot's whole process group and reap the master."""
        proc = self._proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always exits
            pass
        # Children are in the same group: wait until none is still running (zombies waiting for
        # init to reap them hold nothing), so the port and base_dir are free for a restart.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_has_live_processes(proc.pid):
            time.sleep(0.01)
        self._proc = None

    def _atexit(self) -> None:
        """Never leave a Dovecot behind when the interpreter exits without calling stop()."""
        if self.running:
            self._kill_group()


# ---------------------------------------------------------------------- IMAP helpers


def imap_connect(account: Account, timeout: float = 10.0) -> IMAPClient:
    """A logged-in IMAPClient for `account` (plain IMAP on loopback). Call logout() when done."""
    client = IMAPClient(account.host, account.port, ssl=False, timeout=timeout)
    try:
        client.login(account.username, account.password)
    except BaseException:
        client.shutdown()
        raise
    return client


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create `folder` unless it exists (a concurrent creator is fine)."""
    if folder.upper() == "INBOX" or client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except Exception:
        if not client.folder_exists(folder):
            raise


def _append(
    client: IMAPClient,
    folder: str,
    raw: bytes,
    flags: Sequence[str | bytes],
    msg_time: dt.datetime | None,
) -> int | None:
    response = client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
    match = _APPENDUID_RE.search(response if isinstance(response, bytes) else str(response).encode())
    return int(match.group(2)) if match else None


def imap_append(
    account: Account,
    raw: bytes,
    folder: str = "INBOX",
    flags: Sequence[str | bytes] = (),
    msg_time: dt.datetime | None = None,
) -> int | None:
    """Deliver `raw` into `folder` with IMAP APPEND, the way mail lands in a real mailbox.

    `msg_time` sets INTERNALDATE (when the mailbox "received" it; naive means local time).
    The folder is created if needed. Returns the new UID from the APPENDUID response code
    (RFC 4315), or None if the server did not send one.
    """
    client = imap_connect(account)
    try:
        _ensure_folder(client, folder)
        return _append(client, folder, raw, flags, msg_time)
    finally:
        client.logout()


def imap_append_many(
    account: Account,
    messages: Iterable[bytes],
    folder: str = "INBOX",
    flags: Sequence[str | bytes] = (),
    msg_time: dt.datetime | None = None,
) -> list[int | None]:
    """`imap_append` for many messages over one connection (loading big mailboxes quickly)."""
    client = imap_connect(account)
    try:
        _ensure_folder(client, folder)
        return [_append(client, folder, raw, flags, msg_time) for raw in messages]
    finally:
        client.logout()


# ---------------------------------------------------------------------- SMTP sink


@dataclass(frozen=True)
class SinkMessage:
    """One envelope the sink received: SMTP envelope sender, recipients and the raw content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    #: time.time() when DATA completed.
    received_at: float
    #: The SMTP AUTH login the client used, if it authenticated.
    auth_login: str | None = None
    #: The reply the sink gave to DATA ("250 OK" or the injected failure).
    response: str = "250 OK"

    @property
    def message(self) -> email.message.EmailMessage:
        """The content parsed with the modern email policy (decoded headers, get_content())."""
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass
class _Failure:
    code: int
    text: str
    remaining: int | None  # None: every DATA until reset_failures()


class _SinkHandler:
    """aiosmtpd handler: store accepted envelopes, or answer DATA with the injected failure."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self._sink._record(session, envelope)


class _AcceptAnyLogin:
    """SMTP AUTH that accepts any credentials: the sink tests mailbot's sending, not passwords."""

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=True, handled=False, auth_data=auth_data)


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records every message, for asserting what mailbot sent.

    `fail_next(code, count)` / `fail_all(code)` make DATA answer with a 4xx or 5xx so retry and
    permanent-failure paths can be tested; `stop()` / `start()` keep the port to simulate an
    outage. Recorded messages survive a stop/start. AUTH (PLAIN/LOGIN) is offered without TLS
    and accepts any credentials.
    """

    def __init__(self, host: str = LOCALHOST, port: int | None = None) -> None:
        self.host = host
        self.port: int = port if port is not None else free_port(host)
        _RESERVED_PORTS.add(self.port)
        self._cond = threading.Condition()
        self._messages: list[SinkMessage] = []
        self._rejected: list[SinkMessage] = []
        self._failure: _Failure | None = None
        self._controller: Any = None

    # -- lifecycle

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        """Listen (again) on the same host and port."""
        if self._controller is not None:
            return
        from aiosmtpd.controller import Controller

        # A Controller cannot be restarted (its event loop is closed on stop), so make a new one.
        controller = Controller(
            _SinkHandler(self),
            hostname=self.host,
            port=self.port,
            enable_SMTPUTF8=True,
            authenticator=_AcceptAnyLogin(),
            auth_require_tls=False,
            auth_required=False,
            ready_timeout=10.0,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: clients get "connection refused" until start()."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what was received

    @property
    def messages(self) -> list[SinkMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._cond:
            return list(self._messages)

    @property
    def rejected(self) -> list[SinkMessage]:
        """A snapshot of the messages whose DATA was answered with an injected failure."""
        with self._cond:
            return list(self._rejected)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SinkMessage]:
        """Block until at least `count` messages were accepted; return them all.

        Raises TimeoutError (saying how many arrived) when they do not arrive in time.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"SMTP sink got {len(self._messages)} of {count} messages in {timeout}s "
                        f"({len(self._rejected)} rejected by injected failures)"
                    )
                self._cond.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._messages.clear()
            self._rejected.clear()

    # -- failure injection

    def fail_next(self, code: int = 451, count: int = 1, text: str | None = None) -> None:
        """Answer the next `count` DATA commands with `code` (4xx temporary, 5xx permanent)."""
        self._set_failure(code, count, text)

    def fail_all(self, code: int = 451, text: str | None = None) -> None:
        """Answer every DATA with `code` until reset_failures()."""
        self._set_failure(code, None, text)

    def reset_failures(self) -> None:
        """Accept mail normally again."""
        with self._cond:
            self._failure = None

    def _set_failure(self, code: int, count: int | None, text: str | None) -> None:
        if not 400 <= code <= 599:
            raise ValueError(f"failure code must be 4xx or 5xx, not {code}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if text is None:
            text = "4.3.0 Temporary failure (test sink)" if code < 500 else "5.7.1 Rejected (test sink)"
        with self._cond:
            self._failure = _Failure(code, text, count)

    def _record(self, session: Any, envelope: Any) -> str:
        """Called on the server's thread for each DATA: store and answer."""
        auth = getattr(session, "auth_data", None)
        login = getattr(auth, "login", None)
        if isinstance(login, bytes):
            login = login.decode(errors="replace")
        content = envelope.content
        if isinstance(content, str):  # only with decode_data=True, which we do not use
            content = content.encode("utf-8", errors="surrogateescape")
        with self._cond:
            failure = self._failure
            if failure is not None:
                response = f"{failure.code} {failure.text}"
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failure = None
            else:
                response = "250 OK"
            msg = SinkMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=bytes(content),
                received_at=time.time(),
                auth_login=login,
                response=response,
            )
            (self._messages if failure is None else self._rejected).append(msg)
            self._cond.notify_all()
        return response


__all__ = [
    "Account",
    "Dovecot",
    "SinkMessage",
    "SmtpSink",
    "find_dovecot",
    "free_port",
    "imap_append",
    "imap_append_many",
    "imap_connect",
]
