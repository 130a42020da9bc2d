"""Decode worker processes for `DecodePool`, and the fork server they are forked from.

`python -m server.gateway.decode_worker FD` is the fork server: it imports the decoder once, then
for every request on the socket FD forks a worker and answers with its process id. Forking from
a process that has already imported Pillow and numpy makes a new worker cost a millisecond or
two, so a worker killed over its budget is replaced at once. (multiprocessing's own forkserver
would import the gateway's main module in every worker.)

A worker decodes one image at a time: it reads a request from its socket, runs
`preprocess.decode_image` and answers with the pixels or with the error for the caller. Its
address space is capped (`RLIMIT_AS`), so an image that needs more memory fails with
`LimitExceeded`, or ends the process if a codec aborts, which the pool reports. Both the fork
server and its workers die with their parent (`PR_SET_PDEATHSIG`).

Kept light on purpose: nothing here imports grpc or TensorFlow.

Frames on every socket are an 8-byte big-endian length and a pickle: the request
`(data, limits, target_size)`, the answer `("ok", pixels)`, `("invalid", message)` or
`("limit", message)`.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import resource
import signal
import socket
import sys
import warnings
from typing import Final

from server.gateway import preprocess
from server.gateway.errors import InvalidImage, LimitExceeded

OK: Final = "ok"
INVALID: Final = "invalid"
LIMIT: Final = "limit"

_LENGTH: Final = 8
_PR_SET_PDEATHSIG: Final = 1


def send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(_LENGTH, "big") + payload)


def receive_frame(sock: socket.socket) -> bytes:
    """One frame's payload; EOFError when the other side has closed."""
    length = int.from_bytes(receive_exactly(sock, _LENGTH), "big")
    return receive_exactly(sock, length)


def receive_exactly(sock: socket.socket, count: int) -> bytes:
    buffer = bytearray(count)
    view = memoryview(buffer)
    received = 0
    while received < count:
        got = sock.recv_into(view[received:])
        if got == 0:
            raise EOFError("the other side closed the socket")
        received += got
    return bytes(buffer)


def serve(sock: socket.socket, memory_limit_bytes: int) -> None:
    """A worker: answers decode requests from `sock` until the pool closes it."""
    if memory_limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    # One decode at a time in this process: Pillow's warnings about odd files are silenced once.
    warnings.simplefilter("ignore")
    while True:
        try:
            request = receive_frame(sock)
        except (EOFError, OSError):
            return
        send_frame(sock, pickle.dumps(_answer(request), protocol=pickle.HIGHEST_PROTOCOL))


def _answer(request: bytes) -> tuple[str, object]:
    try:
        data, limits, target_size = pickle.loads(request)
        return OK, preprocess.decode_image(data, limits, target_size)
    except InvalidImage as error:
        return INVALID, error.message
    except LimitExceeded as error:
        return LIMIT, error.message
    except MemoryError:
        return LIMIT, preprocess.OUT_OF_MEMORY_MESSAGE


def fork_server(control: socket.socket) -> None:
    """Forks a worker per request on `control` (8 bytes: its memory limit, plus its socket)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, _LENGTH, 1)
        except OSError:
            return
        if not message or not fds:
            return  # the gateway has gone
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _die_with_parent()
            serve(socket.socket(fileno=fds[0]), int.from_bytes(message, "big"))
            os._exit(0)
        os.close(fds[0])
        control.sendall(pid.to_bytes(_LENGTH, "big"))


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main() -> None:
    _die_with_parent()
    parent = int(sys.argv[2])
    if os.getppid() != parent:
        return  # the gateway died before we could watch it
    fork_server(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
