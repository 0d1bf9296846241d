"""A real SMTP server (aiosmtpd) on a free loopback port, recording what it receives."""

from __future__ import annotations

import email
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sandbox.net import free_port


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.greetings: list[str] = []  # the names clients gave in HELO/EHLO
        self.reject_with: str | None = None  # e.g. "451 try later" or "550 no such user"

    async def handle_DATA(self, _server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.greetings.append(session.host_name)
        if self.reject_with:
            return self.reject_with
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.recorder = _Recorder()
        self.port = free_port()
        self._controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Message]:
        return self.recorder.messages
