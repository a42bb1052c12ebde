"""Server-side end of speech (VAD) for clients that leave it to the server (xiaozhi auto/realtime).

WebRTC VAD on 20 ms frames of 16 kHz PCM: speech has started after ``start_ms`` of voiced
audio in a row; it has ended after ``silence_ms`` of unvoiced audio once it started.
"""

from __future__ import annotations

FRAME_BYTES = 640  # 20 ms at 16 kHz, int16


class Endpointer:
    """Feed PCM; ``feed`` returns True once, when the utterance has ended."""

    def __init__(
        self, *, silence_ms: int = 700, start_ms: int = 120, aggressiveness: int = 2
    ) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self.silence_frames, self.start_frames = silence_ms // 20, max(1, start_ms // 20)
        self._pending = b""
        self.voiced_run = self.quiet_run = 0
        self.started = False

    def feed(self, pcm: bytes) -> bool:
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        for start in range(0, whole, FRAME_BYTES):
            voiced = self._vad.is_speech(data[start : start + FRAME_BYTES], 16000)
            self.voiced_run, self.quiet_run = (
                (self.voiced_run + 1, 0) if voiced else (0, self.quiet_run + 1)
            )
            if not self.started and self.voiced_run >= self.start_frames:
                self.started = True
            elif self.started and self.quiet_run >= self.silence_frames:
                return True
        return False
