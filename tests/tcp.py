"""A TCP peer for fault tests: accepts connections and never answers, until told to forward."""

import contextlib
import socket
import threading

from helpers import BackgroundLoop


class SilentThenForwarding(BackgroundLoop):
    """Listens on a loopback port. Each connection is accepted and left unanswered
    (a half-open peer, a firewall dropping packets) until `forward_to(address)`;
    from then on, new connections are relayed to `address` (a (host, port) or a
    Unix socket path). Stopped, with every connection closed, when the `with` ends.
    """

    def __init__(self):
        super().__init__()
        self.listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up now and then to see whether the test is over.
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.target = None
        self.sockets = []

    def forward_to(self, address):
        self.target = address

    def run(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.sockets.append(client)
            if self.target is not None:
                upstream = _connect(self.target)
                self.sockets.append(upstream)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_relay, args=(source, sink), daemon=True).start()

    def __exit__(self, *exc_info):
        super().__exit__(*exc_info)
        self.listener.close()
        for connection in self.sockets:
            with contextlib.suppress(OSError):
                connection.close()


def _connect(address):
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    connection = socket.socket(family, socket.SOCK_STREAM)
    connection.connect(address)
    return connection


def _relay(source, sink):
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
