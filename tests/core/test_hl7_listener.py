"""The MLLP listener over real sockets on 127.0.0.1 (python-hl7's asyncio client), against
`core.capture.hl7.listener.ListenerThread` on a SQLite file, and `python -m core listen-hl7` as a
real process."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import hl7
import pytest
from hl7.mllp import open_hl7_connection
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.capture.hl7.listener import MAX_GROUP, ListenerThread
from core.capture.importing import import_file
from core.config import Settings
from core.store.db import init_db, make_engine
from core.store.models import Alert, InboundMessage, LabResult
from tests.conftest import free_port
from tests.core.test_hl7_receive import FER, oru, stamp

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
SENDERS, PER_SENDER = 4, 250  # the 4 x 250 (bench/hl7_feed.py --messages 250 times it)
INFUSED = date.today() - timedelta(days=5)


def _register_patients(engine: Engine) -> Engine:
    rows = "".join(f"SYN-{i:03d},{INFUSED},axi-cel,4A-{i:02d}\n" for i in range(1, 5))
    assert import_file(engine, f"patient_id,infusion_date,product,bed\n{rows}".encode(),
                       "patients.csv").ok
    return engine


@pytest.fixture
def ward_file(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ward.db'}")
    init_db(engine)
    yield _register_patients(engine)
    engine.dispose()


@pytest.fixture
def ward_store(store: Engine) -> Engine:
    """The same ward on a SQLite file, then on PostgreSQL."""
    return _register_patients(store)


@pytest.fixture
def listener(ward_file: Engine) -> Iterator[ListenerThread]:
    settings = Settings(database_url=ward_file.url.render_as_string(hide_password=False))
    with ListenerThread(ward_file, settings) as running:
        yield running


async def _send_all(port: int, messages: list[str]) -> list[str]:
    """Send messages one after another on one connection; the MSA-1 code of each ACK."""
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    codes = []
    try:
        for message in messages:
            writer.writemessage(hl7.parse(message))
            await writer.drain()
            ack = await asyncio.wait_for(reader.readmessage(), 60)
            codes.append(str(ack.segment("MSA")(1)))
    finally:
        writer.close()
        await writer.wait_closed()
    return codes


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: a test worker that drove the browser before has
    Playwright's event loop running in its main thread, where asyncio.run is refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def send(port: int, *messages: str) -> list[str]:
    return run_async(_send_all(port, list(messages)))


def rows(engine: Engine, model: type = LabResult) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_an_oru_over_mllp_gets_aa_and_its_rows_and_alert_are_there(
        listener: ListenerThread, ward_file: Engine) -> None:
    assert send(listener.port, oru("L1")) == ["AA"]
    assert rows(ward_file) == 2
    with Session(ward_file) as s:  # evaluated before the ACK went out
        assert s.execute(select(Alert).where(Alert.rule_id == "ctcae_platelets",
                                             Alert.grade == 4)).first() is not None
    assert send(listener.port, oru("L1")) == ["AA"]  # resend
    assert rows(ward_file) == 2


def test_a_connections_messages_are_applied_in_order(listener: ListenerThread,
                                                     ward_file: Engine) -> None:
    when = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y%m%d%H%M%S+0000")
    fixed = ("2276-4", "Ferritin", "LN", "NM", "1500", "ug/L", "", "", "C")
    gone = ("2276-4", "Ferritin", "LN", "NM", "", "", "", "", "D")
    assert send(listener.port, oru("O1", [FER], when=when), oru("O2", [fixed], when=when),
                oru("O3", [gone], when=when)) == ["AA", "AA", "AA"]
    with Session(ward_file) as s:
        states = [(r.value, r.status) for r in s.execute(select(LabResult).order_by(
            LabResult.id)).scalars()]
    assert states == [(900.0, "superseded"), (1500.0, "entered_in_error")]


def test_a_malformed_message_over_mllp_gets_ae(listener: ListenerThread,
                                               ward_file: Engine) -> None:
    bad = oru("L2", [("2276-4", "Ferritin", "LN", "NM", "abc", "ug/L", "", "")])
    assert send(listener.port, bad, oru("L3")) == ["AE", "AA"]  # the connection goes on
    assert rows(ward_file) == 2


def test_a_frame_that_is_not_hl7_gets_ae_and_is_kept(listener: ListenerThread,
                                                     ward_file: Engine) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        sock.sendall(_frame("not HL7 at all"))
        ack = b""
        while not ack.endswith(b"\x1c\x0d"):
            chunk = sock.recv(4096)
            assert chunk, "connection closed before the ACK"
            ack += chunk
    assert b"MSA|AE|" in ack and b"does not begin with an MSH segment" in ack
    with Session(ward_file) as s:
        kept = s.execute(select(InboundMessage)).scalars().one()
    assert (kept.status, kept.raw) == ("refused", "not HL7 at all")


def test_four_senders_at_once_lose_nothing_and_share_commits(
        ward_store: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="core.capture.hl7.receive")
    settings = Settings(database_url=ward_store.url.render_as_string(hide_password=False))
    with ListenerThread(ward_store, settings) as listener:
        results, seconds = _four_senders(listener.port)
    assert all(codes == ["AA"] * PER_SENDER for codes in results)
    assert rows(ward_store) == SENDERS * PER_SENDER * 2
    with Session(ward_store) as s:
        stored = s.execute(select(func.count()).select_from(InboundMessage).where(
            InboundMessage.status == "stored")).scalar_one()
    assert stored == SENDERS * PER_SENDER
    # the senders' messages gathered while the database was busy and shared commits
    together = [int(m.group(1)) for r in caplog.records
                if (m := re.search(r"\((\d+) message\(s\) together\)", r.getMessage()))]
    assert len(together) == SENDERS * PER_SENDER and max(together) == SENDERS
    print(f"{SENDERS}x{PER_SENDER} messages in {seconds:.1f} s, "
          f"{len(together) / sum(1 / n for n in together):.1f} messages per commit")


def _four_senders(port: int) -> tuple[list[list[str]], float]:
    base = datetime.now(UTC) - timedelta(hours=1)

    def batch(sender: int) -> list[str]:
        out = []
        for i in range(PER_SENDER):
            when = (base - timedelta(minutes=i)).strftime("%Y%m%d%H%M%S+0000")
            plt = ("777-3", "Platelets", "LN", "NM", str(100 + i % 50), "10*9/L", "", "")
            out.append(oru(f"S{sender}-{i}", [plt, FER], patient=f"SYN-{sender:03d}",
                           when=when))
        return out

    async def everyone() -> list[list[str]]:
        return await asyncio.gather(*(_send_all(port, batch(s))
                                      for s in range(1, SENDERS + 1)))

    started = time.perf_counter()
    results = run_async(everyone())
    return results, time.perf_counter() - started


def test_stopping_under_a_steady_feed_ends_and_every_acknowledged_message_is_stored(
        ward_file: Engine) -> None:
    settings = Settings(database_url=ward_file.url.render_as_string(hide_password=False))
    listener = ListenerThread(ward_file, settings).start()
    feeds = MAX_GROUP + 4  # more senders than a group takes: the queue is never empty
    acked: list[str] = []
    enough = threading.Event()  # the senders give up once the stop has returned

    async def feed(n: int) -> None:  # one message after another until the listener hangs up
        reader, writer = await open_hl7_connection("127.0.0.1", listener.port,
                                                   encoding="utf-8")
        try:
            for i in range(100_000):
                if enough.is_set():
                    break
                when = stamp(2 + (i * feeds + n) / 3600)  # a new collection time each
                writer.writemessage(hl7.parse(oru(f"F{n}-{i}", [FER], when=when)))
                await writer.drain()
                ack = await asyncio.wait_for(reader.readmessage(), 30)
                acked.append(str(ack.segment("MSA")(1)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the listener closed the connection: the last message had no ACK
        finally:
            writer.close()

    async def everyone() -> None:
        await asyncio.gather(*(feed(n) for n in range(feeds)))

    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(asyncio.run, everyone())
        while len(acked) < 3 * feeds and not sending.done():
            time.sleep(0.05)
        started = time.perf_counter()
        listener.stop()
        stopping = time.perf_counter() - started
        enough.set()
        sending.result(timeout=60)
    assert stopping < 10, stopping  # the senders do not keep it open
    assert len(acked) >= 3 * feeds and set(acked) == {"AA"}
    # every AA was committed; at most the messages in flight at the stop (one a sender) are
    # stored unanswered (a resend of one is acknowledged without adding anything)
    assert len(acked) <= rows(ward_file, InboundMessage) <= len(acked) + feeds


def _frame(message: str) -> bytes:
    return b"\x0b" + message.encode() + b"\x1c\x0d"


def test_a_sender_cut_off_mid_message_leaves_nothing_and_its_retry_lands_once(
        listener: ListenerThread, ward_file: Engine) -> None:
    framed = _frame(oru("K1"))
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(framed[: len(framed) // 2])
    time.sleep(0.3)
    assert rows(ward_file) == rows(ward_file, InboundMessage) == 0
    with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as sock:
        sock.sendall(framed)
        ack = b""
        while not ack.endswith(b"\x1c\x0d"):
            chunk = sock.recv(4096)
            assert chunk, "connection closed before the ACK"
            ack += chunk
    assert b"MSA|AA|K1" in ack
    assert send(listener.port, oru("K1")) == ["AA"]
    assert rows(ward_file) == 2 and rows(ward_file, InboundMessage) == 1


def _listen_hl7(ward_file: Engine, port: int) -> subprocess.Popen:
    """`python -m core listen-hl7` on `port`, once it accepts connections."""
    env = {**os.environ, "CARTWATCH_DATABASE_URL":
           ward_file.url.render_as_string(hide_password=False), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "listen-hl7", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "listen-hl7 did not start"
            time.sleep(0.2)


def test_the_command_line_listener_acks_and_stops_on_sigterm(ward_file: Engine) -> None:
    port = free_port()
    proc = _listen_hl7(ward_file, port)
    try:
        assert send(port, oru("CLI1")) == ["AA"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"HL7 listener on 127.0.0.1:{port}" in err
    assert "stopped" in err
    assert rows(ward_file) == 2


def _ack_of(sock: socket.socket) -> bytes:
    ack = b""
    while not ack.endswith(b"\x1c\x0d"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the ACK")
        ack += chunk
    return ack


def _many(control: str, results: int) -> str:
    """An ORU of `results` platelet counts a minute apart, from 5 hours ago back: a message
    the listener is busy with for a while."""
    head = oru(control, [])
    return head + "".join(
        f"OBX|{i}|NM|777-3^Platelets^LN||{100 + i}|10*9/L|150-400|L|||F|||"
        f"{stamp(5 + i / 60)}\r" for i in range(1, results + 1))


def test_the_listener_killed_mid_message_leaves_no_partial_row_and_the_retry_lands_once(
        ward_file: Engine) -> None:
    """SIGKILL while the listener works on a message (its ACK not sent yet): each stored
    message has all its rows and none has some; the sender's retry of the unacknowledged
    message, and a resend of every other, lands each exactly once."""
    messages = [oru(f"KILL{i}", when=stamp(3 + i / 10)) for i in range(3)]  # 2 results each
    big = _many("KILLBIG", 150)
    port = free_port()
    proc = _listen_hl7(ward_file, port)
    try:
        assert send(port, *messages) == ["AA"] * 3
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(_frame(big))
            time.sleep(0.02)  # received and under way, well before its ACK
            proc.kill()
            proc.wait(timeout=30)
            with pytest.raises(OSError):  # no ACK comes: the sender must retry
                _ack_of(sock)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    assert (rows(ward_file, InboundMessage), rows(ward_file)) in {(3, 6), (4, 156)}  # all or none
    proc = _listen_hl7(ward_file, port)  # restarted: the sender retries, then resends all
    try:
        assert send(port, big, *messages) == ["AA"] * 4
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert rows(ward_file, InboundMessage) == 4 and rows(ward_file) == 156
