"""The client's HTTP layer against a real socket server that closes a kept-alive connection
as the next request arrives (what gunicorn does after its 2 s keep-alive, racing a client that
polls every 2 s): a GET is sent again on a new connection; a POST is not."""

import socket
import struct
import threading

import pytest

from dmarket_client.api import ApiError, Client

BODY = b'{"ok": true}'
OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
      b"Connection: keep-alive\r\n\r\n%s" % (len(BODY), BODY))


@pytest.fixture
def closing_server():
    """Answers the first request of each connection, then reads the next one and closes the
    connection without answering. Yields (url, connections accepted so far)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve(conn):
        with conn:
            conn.recv(65536)
            conn.sendall(OK)
            conn.recv(65536)
            # Closed with a reset, as a worker that drops the connection.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()


def test_a_get_on_a_connection_closed_by_the_server_is_sent_again(closing_server):
    url, accepted = closing_server
    client = Client(url)
    assert client.get("a") == {"ok": True}
    assert client.get("b") == {"ok": True}
    assert len(accepted) == 2


def test_a_post_is_not_sent_twice(closing_server):
    url, accepted = closing_server
    client = Client(url)
    assert client.get("a") == {"ok": True}
    with pytest.raises(ApiError, match="cannot reach the server"):
        client.post("b", {})
    assert len(accepted) == 1
