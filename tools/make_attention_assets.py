"""Generates the console's attention chime (pwa/static/sounds/attention.wav) and the favicon."""
import math, struct, wave
from pathlib import Path

rate = 22050
def tone(freq, dur, vol=0.5):
    n = int(rate * dur)
    out = []
    for i in range(n):
        t = i / rate
        env = min(1.0, i / (0.005 * rate)) * math.exp(-5.0 * t)  # quick attack, bell-like decay
        s = vol * env * (math.sin(2 * math.pi * freq * t) + 0.3 * math.sin(2 * math.pi * 2 * freq * t)) / 1.3
        out.append(s)
    return out
samples = tone(880, 0.22) + tone(1318.5, 0.38)
with wave.open("pwa/static/sounds/attention.wav", "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", int(max(-1, min(1, s)) * 32767)) for s in samples))

png = Path("pwa/icons/icon-192.png").read_bytes()
# An .ico holding one PNG image (every browser since 2010 reads these): header, one entry, the PNG.
header = struct.pack("<HHH", 0, 1, 1)
entry = struct.pack("<BBBBHHII", 192, 192, 0, 0, 1, 32, len(png), 6 + 16)
Path("pwa/favicon.ico").write_bytes(header + entry + png)
