"""`gannet chat` driven through a pseudo-terminal like a person at a keyboard: answers stream, /reset
and /system work, Ctrl-C stops an answer without leaving, Ctrl-D leaves with exit status 0."""
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("GANNET_TEST_MODEL", ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"))


class Terminal:
    def __init__(self, argv):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                     start_new_session=True)
        os.close(slave)
        self.out = b""

    def read_until(self, marker: bytes, timeout=120.0):
        start = len(self.out)
        deadline = time.time() + timeout
        while marker not in self.out[start:]:
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
        return self.out[start:]

    def read_some(self, n_bytes, timeout=120.0):
        start = len(self.out)
        deadline = time.time() + timeout
        while len(self.out) - start < n_bytes and time.time() < deadline:
            r, _, _ = select.select([self.master], [], [], 0.5)
            if r:
                self.out += os.read(self.master, 4096)
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
        t.read_some(40)  # the answer is streaming
        t.send(b"\x03")  # Ctrl-C
        t.read_until(b"[stopped]", timeout=30)
        t.read_until(b"> ")
        assert t.proc.poll() is None
        t.send(b"Thanks.\r")
        t.read_until(b"\n> ")
        t.send(b"\x04")
        assert t.proc.wait(30) == 0
    finally:
        t.close()
