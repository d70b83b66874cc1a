"""A quick answer to "can this machine reach HOST?", so that offline machines never hang."""

import socket
import threading


def can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Name resolution has no timeout of its own, so the attempt runs in a daemon thread that
    is abandoned when it takes too long.
    """
    reached = threading.Event()

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reached.set()
        except OSError:
            pass

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return reached.is_set()
