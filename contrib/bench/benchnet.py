"""What the benchmark scripts share about the loopback network."""

import socket


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (DNS listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise SystemExit("no port free for both UDP and TCP on 127.0.0.1")
