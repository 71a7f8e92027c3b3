"""Where the device emulator listens: a pseudo-terminal (what a USB serial adapter looks like to
the host) or a TCP port. Standard library only."""

from __future__ import annotations

import os
import select
import socket
import tty
from typing import Protocol


class Transport(Protocol):
    name: str
    """What the host connects to: a pty path or a socket:// URL."""

    def read(self, timeout: float) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class PtyTransport:
    """A pseudo-terminal pair: the emulator holds the master, the host opens the slave
    (`name`, e.g. /dev/pts/5). Raw mode both ways: no echo, no line editing, every byte as is."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        # The emulator keeps the slave open too: a host closing its end then does not make the
        # master's reads fail, and the next host can connect.
        self.name = os.ttyname(self.slave)

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                select.select([], [self.master], [], 0.01)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpTransport:
    """A TCP port on 127.0.0.1, one host at a time (`socket://127.0.0.1:PORT` for pyserial)."""

    def __init__(self, port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.setblocking(False)
        self.name = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.client: socket.socket | None = None

    def read(self, timeout: float) -> bytes:
        watched = [self.client or self.server]
        ready, _, _ = select.select(watched, [], [], timeout)
        if not ready:
            return b""
        if self.client is None:
            self.client, _ = self.server.accept()
            self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return b""
        try:
            data = self.client.recv(4096)
        except ConnectionError:
            data = b""
        if not data:  # the host hung up: wait for the next one
            self.client.close()
            self.client = None
        return data

    def write(self, data: bytes) -> None:
        if self.client is not None:
            try:
                self.client.sendall(data)
            except ConnectionError:
                self.client.close()
                self.client = None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.server.close()
