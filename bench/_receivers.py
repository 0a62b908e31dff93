"""Real receivers on 127.0.0.1 for notification tests and the delivery benchmark.

`HttpReceiver` is an http.server in a thread that keeps every raw request (so a double send
is counted, never hidden by deduplication), verifies the Standard Webhooks signature of each
one when given the secret, and answers from a script: a status code, or "block" (hold the
request until released; for the crash test). `SmtpReceiver` is an aiosmtpd server (a dev
requirement, imported only when started) that keeps every message.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench._pg import free_port


@dataclass
class Received:
    """One raw HTTP request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: no secret to check against
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """POST endpoint on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self, secret: str | None = None, script: Iterable[int | str] = (),
                 default: int = 200) -> None:
        self.secret = secret
        self.script: deque[int | str] = deque(script)
        self.default = default
        self.requests: list[Received] = []
        self.blocked = threading.Event()  # a "block" request has arrived
        self.release = threading.Event()  # lets a blocked request answer
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the receiver first"
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _next(self) -> int | str:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, error = None, None
                if receiver.secret is not None:
                    from standardwebhooks.webhooks import Webhook

                    try:
                        Webhook(receiver.secret).verify(body, headers)
                        verified = True
                    except Exception as exc:  # recorded: the test asserts on it
                        verified, error = False, f"{type(exc).__name__}: {exc}"
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body, verified, error))
                action = receiver._next()
                if action == "block":
                    receiver.blocked.set()
                    receiver.release.wait(timeout=120)
                    action = 200
                try:
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sender is gone (killed while blocked): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep test output clean; every request is in receiver.requests

        return Handler

    def start(self) -> HttpReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def documents(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests]


class SmtpReceiver:
    """Plain SMTP (no TLS, no auth) on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self._controller: Any = None
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def url(self, to: str, sender: str = "cartwatch@ward.example") -> str:
        """The Apprise URL that talks plain SMTP to this server (mode=insecure: no TLS)."""
        return f"mailto://127.0.0.1:{self.port}?from={sender}&to={to}&mode=insecure"

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def parsed(self) -> list[EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
                for _f, _t, raw in self.messages]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for (_f, rcpt, _r), m in zip(self.messages, self.parsed(), strict=True)
                if address in rcpt]

    @staticmethod
    def text_of(message: EmailMessage) -> str:
        """Subject and every decoded text part: what a person would read."""
        parts = [str(message["subject"])]
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts.append(part.get_content())
        return "\n".join(parts)
