"""The official OpenAI Python SDK's images, speech and transcription calls against Gaia (only
`base_url` and `api_key` changed), on the mock upstream. Prints `media ok` when every check passes."""

import base64
import io
import os
import sys
import urllib.request

from openai import OpenAI

URL = os.environ["GAIA_URL"]
KEY = os.environ["GAIA_KEY"]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


client = OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)

# Images: base64, then a signed URL that a game client fetches with no key.
img = client.images.generate(model="openai/gpt-image-1", prompt="a brass lantern icon", size="256x256", n=2)
check(len(img.data) == 2, "two images")
png = base64.b64decode(img.data[0].b64_json)
check(png.startswith(b"\x89PNG"), "a PNG in b64_json")
img = client.images.generate(model="openai/dall-e-3", prompt="a misty harbour", size="256x256", response_format="url")
url = img.data[0].url
check(url.startswith(URL + "/media/"), f"a Gaia URL: {url}")
with urllib.request.urlopen(url) as r:
    check(r.read().startswith(b"\x89PNG"), "the signed URL serves the image without a key")
check(img.data[0].revised_prompt == "a misty harbour", "revised_prompt passed through")

# Speech, then the same audio transcribed: a voiced NPC hears what it said.
speech = client.audio.speech.create(model="openai/tts-1", voice="alloy", input="Halt, who goes there?",
                                    response_format="wav")
audio = speech.read()
check(audio.startswith(b"RIFF"), "WAV audio")
mp3 = client.audio.speech.create(model="openai/tts-1", voice="nova", input="Welcome back")
check(mp3.read().startswith(b"ID3"), "MP3 by default")
t = client.audio.transcriptions.create(model="openai/whisper-1", file=("npc.wav", io.BytesIO(audio), "audio/wav"))
check(t.text == "Halt, who goes there?", f"the transcription round-trips: {t.text!r}")
v = client.audio.transcriptions.create(model="openai/whisper-1", file=("npc.wav", io.BytesIO(audio), "audio/wav"),
                                       response_format="verbose_json")
check(abs(v.duration - 1.6) < 0.01, f"verbose_json has the duration: {v.duration}")
txt = client.audio.transcriptions.create(model="openai/whisper-1", file=("npc.wav", io.BytesIO(audio)),
                                         response_format="text")
check(txt.strip() == "Halt, who goes there?", f"text format: {txt!r}")

# Errors in OpenAI's shape, typed by the SDK.
try:
    client.images.generate(model="openai/dall-e-3", prompt="x", n=11)
    check(False, "n=11 refused")
except Exception as e:  # openai.BadRequestError
    check(type(e).__name__ == "BadRequestError", f"a BadRequestError: {type(e).__name__} {e}")
print("media ok")
