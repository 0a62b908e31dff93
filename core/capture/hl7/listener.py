"""The MLLP listener: python-hl7's asyncio server, the database work off the event loop.

Each connection is read one framed message at a time (python-hl7's MLLP stream reader) and
its ACK written before the next message of that connection is read, so a sender's messages
are applied in the order sent while other connections go on at the same time. A connection
that closes in the middle of a message leaves nothing: only a complete frame is ever
processed.

Complete messages wait in one queue, first come first served, for the one database worker.
It takes every message waiting, up to `MAX_GROUP`, and processes them together in its thread
(`core.capture.hl7.receive.receive_all`: each message all or nothing, one commit for the
group, their patients evaluated once): while the database is busy, the messages of several
senders gather and share the next commit. One worker on every engine: SQLite has one writer
(and its busy wait is not fair: a waiting writer can starve for seconds), and on PostgreSQL
every write's evaluation takes the evaluation lock until it commits, so parallel transactions
would only wait for each other (4 x 250 messages from 4 senders: 33 s with 4 workers of one
message each, 17 s with one worker's groups). Several listener processes share that lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from core.capture.hl7.receive import Reply, receive_all
from core.config import Settings

try:  # python-hl7 >= 0.4
    from hl7.mllp import HL7StreamReader, HL7StreamWriter, InvalidBlockError, start_hl7_server
except ImportError as exc:  # pragma: no cover - a broken install says so at start
    raise ImportError("the hl7 package (python-hl7) is needed for listen-hl7") from exc

log = logging.getLogger(__name__)

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 2575
MAX_MESSAGE_BYTES = 4 * 2**20
# at most this many messages share a commit: a group holds SQLite's write lock for about
# 10 ms a message, and a nurse's save waits behind it
MAX_GROUP = 16
# ... and a worker waits this long at most for the other open connections' next messages:
# their ACKs left together, so their next messages arrive within a millisecond or two
GATHER_S = 0.005
Handler = Callable[[Engine, list[str], Settings], list[Reply]]


def _decode(block: bytes) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("latin-1")  # HL7's traditional 8-bit default


class Listener:
    """An MLLP server bound to (host, port); `port` 0 picks a free one (see `.port`)."""

    def __init__(self, engine: Engine, settings: Settings, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, handler: Handler | None = None) -> None:
        self.engine, self.settings, self.host, self.port = engine, settings, host, port
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hl7-database")
        self.handler = handler or receive_all
        self._server: asyncio.Server | None = None
        self._waiting: asyncio.Queue[tuple[str, asyncio.Future[Reply]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._connections = 0
        self._closing = False

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="hl7-database")
        server: asyncio.Server = await start_hl7_server(self._client, self.host, self.port,
                                                        limit=MAX_MESSAGE_BYTES)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        log.info("HL7 listener on %s:%d (MLLP)", self.host, self.port)

    async def close(self) -> None:
        self._closing = True  # a message read from now on is not taken: no ACK, sent again
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # messages waiting or in flight finish their transaction (and may still send their ACK)
        await self._waiting.join()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        log.info("HL7 listener on %s:%d stopped", self.host, self.port)

    async def _work(self) -> None:
        """The database worker: every message waiting (up to MAX_GROUP) in one group commit,
        each one's ACK handed back to its connection."""
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._waiting.get()]
            until = loop.time() + GATHER_S
            while len(group) < min(MAX_GROUP, self._connections):
                if self._waiting.empty() and loop.time() >= until:
                    break
                try:
                    group.append(await asyncio.wait_for(self._waiting.get(),
                                                        max(0.0, until - loop.time())))
                except TimeoutError:
                    break
            try:
                replies = await loop.run_in_executor(
                    self.executor, self.handler, self.engine, [raw for raw, _ in group],
                    self.settings)
            except Exception as exc:  # receive_all answers every message; this is a bug
                log.exception("HL7: %d message(s) could not be processed; their connections "
                              "get no ACK and the senders retry", len(group))
                for _raw, answer in group:
                    if not answer.done():
                        answer.set_exception(exc)
            else:
                for (_raw, answer), reply in zip(group, replies, strict=True):
                    if not answer.done():  # its connection may have gone meanwhile
                        answer.set_result(reply)
            finally:
                for _ in group:
                    self._waiting.task_done()

    async def _client(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log.info("HL7 connection from %s", peer)
        loop = asyncio.get_running_loop()
        self._connections += 1
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.warning("HL7 connection from %s closed in the middle of a message "
                                    "(%d bytes discarded; nothing stored)", peer,
                                    len(exc.partial))
                    break
                except InvalidBlockError as exc:
                    log.warning("HL7 from %s: not an MLLP frame, skipped (%s)", peer, exc)
                    continue
                except ValueError as exc:  # longer than MAX_MESSAGE_BYTES
                    log.warning("HL7 from %s: message too long, skipped (%s)", peer, exc)
                    continue
                if self._closing:
                    log.info("HL7 listener stopping: a message from %s not taken (no ACK; "
                             "the sender sends it again)", peer)
                    break
                answer: asyncio.Future[Reply] = loop.create_future()
                await self._waiting.put((_decode(block), answer))
                reply = await answer
                writer.writeblock(reply.ack.encode("utf-8"))
                await writer.drain()
        except ConnectionError as exc:
            log.warning("HL7 connection from %s lost: %s", peer, exc)
        finally:
            self._connections -= 1
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError as exc:
                log.info("HL7 connection from %s closed uncleanly: %s", peer, exc)
            log.info("HL7 connection from %s closed", peer)


async def serve(engine: Engine, settings: Settings, host: str, port: int,
                stop: asyncio.Event, started: Callable[[Listener], None] | None = None) -> None:
    """Run a listener until `stop` is set."""
    listener = Listener(engine, settings, host, port)
    await listener.start()
    if started is not None:
        started(listener)
    try:
        await stop.wait()
    finally:
        await listener.close()


class ListenerThread:
    """A listener on its own event loop in a background thread (tests, benchmarks)."""

    def __init__(self, engine: Engine, settings: Settings, host: str = DEFAULT_HOST,
                 port: int = 0) -> None:
        self.engine, self.settings, self.host, self.port = engine, settings, host, port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hl7-listener", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def up(listener: Listener) -> None:
                self.port = listener.port
                self._ready.set()

            await serve(self.engine, self.settings, self.host, self.port, self._stop, up)

        try:
            asyncio.run(main())
        except BaseException as exc:
            log.exception("HL7 listener thread failed")
            self._error = exc
            self._ready.set()

    def start(self) -> ListenerThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the HL7 listener did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the HL7 listener did not start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def __enter__(self) -> ListenerThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run(engine: Engine, settings: Settings, host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT) -> None:
    """Serve until SIGTERM or SIGINT (the command line's `listen-hl7`), then close cleanly."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(engine, settings, host, port, stop)

    asyncio.run(main())
