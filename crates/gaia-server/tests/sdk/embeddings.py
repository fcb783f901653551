"""The official OpenAI Python SDK's `embeddings.create` against Gaia (only `base_url` and `api_key`
changed), on the mock upstream. Prints `embeddings ok` when every check passes."""

import math
import os
import sys

from openai import OpenAI

URL = os.environ["GAIA_URL"]
KEY = os.environ["GAIA_KEY"]
MODEL = "openai/text-embedding-3-small"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


client = OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)

# A batch, with `dimensions`; the SDK asks for base64 by default and decodes it.
texts = ["the fog rolls over the harbour", "fog over the harbour at night", "a recipe for apple pie"]
r = client.embeddings.create(model=MODEL, input=texts, dimensions=64)
check(len(r.data) == 3, "three embeddings")
check([d.index for d in r.data] == [0, 1, 2], "in order")
check(all(len(d.embedding) == 64 for d in r.data), "64 dimensions")
check(cos(r.data[0].embedding, r.data[1].embedding) > cos(r.data[0].embedding, r.data[2].embedding),
      "similarity follows shared words")
check(r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens, f"usage: {r.usage}")
check(r.model == MODEL, f"model: {r.model}")

# Floats asked for explicitly: the same vectors.
f = client.embeddings.create(model=MODEL, input=texts[0], dimensions=64, encoding_format="float")
check(len(f.data) == 1, "one embedding for a string")
check(max(abs(x - y) for x, y in zip(f.data[0].embedding, r.data[0].embedding)) < 1e-6, "float equals base64")

# The model's own size without `dimensions`.
d = client.embeddings.create(model=MODEL, input="lantern")
check(len(d.data[0].embedding) == 1536, f"default size: {len(d.data[0].embedding)}")

# Errors in OpenAI's shape, typed by the SDK.
try:
    client.embeddings.create(model=MODEL, input="x", dimensions=0)
    check(False, "dimensions=0 refused")
except Exception as e:  # openai.BadRequestError
    check(type(e).__name__ == "BadRequestError", f"a BadRequestError: {type(e).__name__} {e}")
print("embeddings ok")
