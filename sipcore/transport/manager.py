"""One object owning every SIP socket of an endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from ..errors import SipParseError
from ..framing import PING, StreamFramer
from .base import Flow, TransportError

__all__ = ["TransportManager"]

log = logging.getLogger("sipcore.transport")
Receiver = Callable[[bytes, Flow], None]
_ids = itertools.count(1)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, mgr: TransportManager, kind: str) -> None:
        self.mgr = mgr
        self.kind = kind
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("0.0.0.0", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if data.strip(b"\r\n") == b"":
            if data == b"\r\n\r\n" and self.transport is not None:  # RFC 5626 §3.5.1 STUN-less ping
                self.transport.sendto(b"\r\n", addr)
            return
        self.mgr._deliver(data, Flow("udp", self.local, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class _Conn:
    """A stream (TCP/TLS) or WebSocket connection."""

    def __init__(self, kind: str, local: tuple[str, int], remote: tuple[str, int]) -> None:
        self.kind = kind
        self.flow = Flow(kind, local, remote, next(_ids))
        self.writer: asyncio.StreamWriter | None = None
        self.ws: Any = None
        self.closed = asyncio.Event()

    async def send(self, data: bytes) -> None:
        if self.ws is not None:
            await self.ws.send(data.decode("utf-8", "surrogateescape"))
        elif self.writer is not None:
            self.writer.write(data)
            await self.writer.drain()


class TransportManager:
    """Listens, connects, sends and receives SIP messages on UDP/TCP/TLS/WS(S)."""

    def __init__(self, on_message: Receiver, *, connect_timeout: float = 5.0,
                 tls_context: ssl.SSLContext | None = None, verify_tls: bool = True) -> None:
        self.on_message = on_message
        self.connect_timeout = connect_timeout
        self.tls_context = tls_context
        """Client side of TLS/WSS connections we open: the CAs to trust, our certificate for
        mutual TLS. None: the system CAs with host name checking (RFC 5922 §7)."""
        self.verify_tls = verify_tls
        """False turns certificate and host name checks off (labs only; ignored with ``tls_context``)."""
        self._udp: dict[str, _Udp] = {}
        self._servers: list[Any] = []
        self._conns: dict[int, _Conn] = {}
        self._by_remote: dict[tuple[str, str, int], _Conn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.listening: dict[str, tuple[str, int]] = {}
        self.on_flow_closed: Callable[[Flow], None] | None = None

    # -- listening -------------------------------------------------------------------------
    async def listen_udp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(lambda: _Udp(self, "udp"), local_addr=(host, port))
        self._udp["udp"] = proto
        self.listening["udp"] = proto.local
        return proto.local

    async def listen_tcp(self, host: str = "127.0.0.1", port: int = 0, *,
                         ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        kind = "tls" if ssl_context is not None else "tcp"
        server = await asyncio.start_server(lambda r, w: self._serve_stream(kind, r, w), host, port, ssl=ssl_context)
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        addr = (str(sockname[0]), int(sockname[1]))
        self.listening[kind] = addr
        return addr

    async def listen_ws(self, host: str = "127.0.0.1", port: int = 0, *,
                        ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        from websockets.asyncio.server import serve

        kind = "wss" if ssl_context is not None else "ws"
        server = await serve(lambda ws: self._serve_ws(kind, ws), host, port, subprotocols=["sip"],  # type: ignore[list-item]
                             ssl=ssl_context, max_size=1 << 20)
        self._servers.append(server)
        sockname = next(iter(server.sockets)).getsockname()
        addr = (str(sockname[0]), int(sockname[1]))
        self.listening[kind] = addr
        return addr

    # -- receiving -------------------------------------------------------------------------
    def _deliver(self, data: bytes, flow: Flow) -> None:
        try:
            self.on_message(data, flow)
        except Exception:  # a bug in the layer above must not kill the transport
            log.exception("SIP message handler failed for a message from %s", flow)

    def _register(self, conn: _Conn) -> None:
        self._conns[conn.flow.conn_id] = conn
        self._by_remote[(conn.kind, conn.flow.remote[0], conn.flow.remote[1])] = conn

    def _unregister(self, conn: _Conn) -> None:
        self._conns.pop(conn.flow.conn_id, None)
        key = (conn.kind, conn.flow.remote[0], conn.flow.remote[1])
        if self._by_remote.get(key) is conn:
            del self._by_remote[key]
        conn.closed.set()
        if self.on_flow_closed is not None:
            self.on_flow_closed(conn.flow)

    async def _serve_stream(self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _Conn(kind, writer.get_extra_info("sockname")[:2], (peer[0], peer[1]))
        conn.writer = writer
        self._register(conn)
        await self._read_stream(conn, reader)

    async def _read_stream(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for item in framer.feed(chunk):
                    if item is PING:
                        await conn.send(b"\r\n")
                    elif isinstance(item, bytes):
                        self._deliver(item, conn.flow)
        except SipParseError as exc:
            log.warning("closing %s: unframeable stream (%s)", conn.flow, exc)
        except (ConnectionError, OSError) as exc:
            log.debug("%s closed: %s", conn.flow, exc)
        finally:
            self._unregister(conn)
            if conn.writer is not None:
                conn.writer.close()

    async def _serve_ws(self, kind: str, ws: Any) -> None:
        peer = ws.remote_address
        conn = _Conn(kind, ws.local_address[:2], (peer[0], peer[1]))
        conn.ws = ws
        self._register(conn)
        await self._read_ws(conn)

    async def _read_ws(self, conn: _Conn) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in conn.ws:
                data = frame.encode("utf-8", "surrogateescape") if isinstance(frame, str) else bytes(frame)
                if data.strip(b"\r\n"):
                    self._deliver(data, conn.flow)
        except ConnectionClosed:
            pass
        finally:
            self._unregister(conn)

    # -- sending ---------------------------------------------------------------------------
    async def send(self, data: bytes, *, flow: Flow | None = None, transport: str = "udp",
                   host: str = "", port: int = 0, ws_path: str = "/", server_name: str | None = None) -> Flow:
        """Send ``data`` on ``flow`` (when still open) or to ``transport:host:port``.

        A new TLS/WSS connection checks the server certificate against ``server_name`` (default
        ``host``: the SIP domain or host the target was resolved from, RFC 5922 §7). Raises
        :class:`TransportError` when it cannot be sent (including a failed certificate check).
        """
        if flow is not None:
            transport, host, port = flow.transport, flow.remote[0], flow.remote[1]
            conn = self._conns.get(flow.conn_id) if flow.conn_id else None
            if conn is not None:
                return await self._send_conn(conn, data)
        transport = transport.lower()
        if transport == "udp":
            udp = self._udp.get("udp")
            if udp is None or udp.transport is None:
                await self.listen_udp("0.0.0.0" if host not in ("127.0.0.1", "localhost") else "127.0.0.1")
                udp = self._udp["udp"]
            try:
                if udp.transport is None:
                    raise OSError("socket closed")
                udp.transport.sendto(data, (host, port))
            except OSError as exc:
                raise TransportError(f"UDP send to {host}:{port} failed: {exc}") from exc
            return Flow("udp", udp.local, (host, port))
        existing = self._by_remote.get((transport, host, port))
        if existing is None:
            existing = await self._connect(transport, host, port, ws_path, server_name)
        return await self._send_conn(existing, data)

    def client_tls_context(self) -> ssl.SSLContext:
        """The context for TLS connections we open (see ``tls_context`` / ``verify_tls``)."""
        if self.tls_context is not None:
            return self.tls_context
        ctx = ssl.create_default_context()
        if not self.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def peer_certificate(self, flow: Flow) -> dict[str, Any] | None:
        """The verified certificate of the peer on a TLS flow (None: not TLS, not verified, or closed)."""
        conn = self._conns.get(flow.conn_id) if flow.conn_id else None
        if conn is None or conn.writer is None:
            return None
        cert = conn.writer.get_extra_info("peercert")
        return cert if isinstance(cert, dict) and cert else None

    async def _send_conn(self, conn: _Conn, data: bytes) -> Flow:
        try:
            await conn.send(data)
        except Exception as exc:
            raise TransportError(f"send on {conn.flow} failed: {exc}") from exc
        return conn.flow

    async def _connect(self, transport: str, host: str, port: int, ws_path: str,
                       server_name: str | None = None) -> _Conn:
        try:
            if transport in ("tcp", "tls"):
                ctx = self.client_tls_context() if transport == "tls" else None
                name = (server_name or host) if ctx is not None and ctx.check_hostname else None
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=ctx, server_hostname=name if ctx is not None else None),
                    self.connect_timeout)
                conn = _Conn(transport, writer.get_extra_info("sockname")[:2], (host, port))
                conn.writer = writer
                self._register(conn)
                self._spawn(self._read_stream(conn, reader))
                return conn
            if transport in ("ws", "wss"):
                from websockets.asyncio.client import connect

                scheme = "wss" if transport == "wss" else "ws"
                tls: dict[str, Any] = {}
                if scheme == "wss":
                    wctx = self.client_tls_context()
                    tls = {"ssl": wctx}
                    if wctx.check_hostname:
                        tls["server_hostname"] = server_name or host
                ws = await asyncio.wait_for(
                    connect(f"{scheme}://{host}:{port}{ws_path}", subprotocols=["sip"],  # type: ignore[list-item]
                            open_timeout=self.connect_timeout, max_size=1 << 20, **tls),
                    self.connect_timeout + 1)
                conn = _Conn(transport, ws.local_address[:2], (host, port))
                conn.ws = ws
                self._register(conn)
                self._spawn(self._read_ws(conn))
                return conn
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to {transport}:{host}:{port}: {exc}") from exc
        except Exception as exc:  # websockets handshake errors
            raise TransportError(f"cannot connect to {transport}:{host}:{port}: {exc}") from exc
        raise TransportError(f"unknown transport {transport!r}")

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def local_address(self, transport: str) -> tuple[str, int]:
        """The address we listen on for ``transport`` (or the UDP socket's)."""
        return self.listening.get(transport) or self.listening.get("udp") or ("127.0.0.1", 0)

    async def close(self) -> None:
        for udp in self._udp.values():
            if udp.transport is not None:
                udp.transport.close()
        for conn in list(self._conns.values()):
            if conn.writer is not None:
                conn.writer.close()
            if conn.ws is not None:
                with contextlib.suppress(Exception):
                    await conn.ws.close()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self._udp.clear()


def resolve(host: str) -> str:
    """Resolve a host name to an IPv4/IPv6 literal (RFC 3263 A/AAAA step; no NAPTR/SRV)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve {host!r}: {exc}") from exc
    return str(infos[0][4][0])
