"""`gannet chat` driven through a pseudo-terminal like a person at a keyboard: answers stream, /reset
and /system work, Ctrl-C stops an answer without leaving, Ctrl-D leaves with exit status 0."""
import fcntl
import os
import pty
import re
import select
import subprocess
import termios
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("GANNET_TEST_MODEL", ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"))


ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # terminal control sequences readline may write


class Terminal:
    def __init__(self, argv):
        self.master, slave = pty.openpty()
        # Its own session with the pty as controlling terminal, so Ctrl-C reaches it as SIGINT.
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     preexec_fn=lambda: (os.setsid(), fcntl.ioctl(0, termios.TIOCSCTTY, 0)))
        os.close(slave)
        self.out = b""
        self.pos = 0  # read_until's cursor into out

    def read_until(self, marker: bytes, timeout=120.0):
        """Output from the cursor up to and including `marker` (escapes removed); the cursor moves past it."""
        deadline = time.time() + timeout
        while True:
            clean = ANSI.sub(b"", self.out[self.pos:])
            i = clean.find(marker)
            if i >= 0:
                # Move the raw cursor to just after the marker.
                raw_end = self.pos
                while len(ANSI.sub(b"", self.out[self.pos:raw_end])) < i + len(marker):
                    raw_end += 1
                self.pos = raw_end
                return clean[:i + len(marker)]
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {marker!r}; got {self.out[-500:]!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"terminal closed waiting for {marker!r}; got {self.out[-500:]!r}")
                self.out += data

    def read_some(self, n_bytes, timeout=120.0):
        start = len(self.out)
        deadline = time.time() + timeout
        while len(self.out) - start < n_bytes and time.time() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.5)
            if r:
                self.out += os.read(self.master, 4096)
        self.pos = len(self.out)
        return self.out[start:]

    def send(self, data: bytes):
        os.write(self.master, data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def chat(gannet_bin):
    if not MODEL.is_file():
        pytest.fail(f"default model missing: {MODEL}")
    t = Terminal([str(gannet_bin), "chat", "-m", str(MODEL), "--temp", "0", "-n", "24", "-c", "1024"])
    yield t
    t.close()


def test_chat_session(chat):
    chat.read_until(b"> ")
    chat.send(b"Say hi.\r")
    reply = chat.read_until(b"\n> ")
    text = reply.decode("utf-8", "replace")
    assert "Say hi." in text  # the echoed line
    answer = text.split("Say hi.", 1)[1].rsplit("> ", 1)[0].strip()
    assert answer, text

    # The same question after /reset gives the same greedy answer (the conversation was cleared).
    chat.send(b"/reset\r")
    chat.read_until(b"conversation cleared")
    chat.read_until(b"> ")
    chat.send(b"Say hi.\r")
    again = chat.read_until(b"\n> ").decode("utf-8", "replace")
    assert again.split("Say hi.", 1)[1].rsplit("> ", 1)[0].strip() == answer

    chat.send(b"/system You are a pirate.\r")
    chat.read_until(b"system prompt set")
    chat.read_until(b"> ")

    chat.send(b"\x04")  # Ctrl-D on an empty line
    assert chat.proc.wait(30) == 0


def test_ctrl_c_stops_answer_and_keeps_chat(gannet_bin):
    t = Terminal([str(gannet_bin), "chat", "-m", str(MODEL), "--temp", "0", "-n", "2000", "-c", "4096"])
    try:
        t.read_until(b"> ")
        t.send(b"Write a very long story about a dragon.\r")
        t.read_until(b"dragon.\r\n")  # the echoed line
        t.read_some(20)  # the answer is streaming
        t.send(b"\x03")  # Ctrl-C
        t.read_until(b"[stopped]", timeout=30)
        t.read_until(b"> ")
        assert t.proc.poll() is None
        # The chat goes on: a second answer, stopped the same way.
        t.send(b"Thanks.\r")
        t.read_until(b"Thanks.\r\n")
        t.read_some(20)
        t.send(b"\x03")
        t.read_until(b"[stopped]", timeout=30)
        t.read_until(b"> ")
        # Ctrl-C at the prompt drops the half-typed line and gives a fresh prompt.
        t.send(b"half typed")
        t.read_until(b"half typed")
        t.send(b"\x03")
        t.read_until(b"> ", timeout=10)
        assert t.proc.poll() is None
        t.send(b"\x04")
        assert t.proc.wait(30) == 0
    finally:
        t.close()
