"""The official SDKs name the player a call is for (OpenAI's `user`, Anthropic's `metadata.user_id`),
and a per-player budget stops one player while another goes on. Run by tests/sdk.rs with GAIA_URL
and GAIA_KEY set, the key having a budget for each of its players.
"""
import os
import sys

import anthropic
import openai

BASE = os.environ["GAIA_URL"]
KEY = os.environ["GAIA_KEY"]
ASK = [{"role": "user", "content": "Is it foggy?"}]


def check(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


oa = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0)
an = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0)

# The spender plays until their budget stops them.
stopped = None
for i in range(40):
    try:
        oa.chat.completions.create(model="mock-gpt", messages=ASK, user="spender")
    except openai.APIStatusError as e:
        check(e.status_code == 402, f"openai sdk: a spent player gets 402, not {e.status_code}")
        check("budget of this end user" in e.message, f"openai sdk: the refusal says why: {e.message}")
        stopped = i
        break
check(stopped is not None and stopped >= 1, f"openai sdk: the spender was stopped after some calls ({stopped})")

# Another player goes on, through both SDKs; the spender is stopped through Anthropic's too.
r = oa.chat.completions.create(model="mock-gpt", messages=ASK, user="saver")
check(r.choices[0].message.content.startswith("Mock reply"), f"openai sdk: another player goes on: {r}")
m = an.messages.create(model="anthropic/mock-claude", max_tokens=16, messages=ASK, metadata={"user_id": "saver"})
check(m.content[0].text.startswith("Mock reply"), f"anthropic sdk: another player goes on: {m}")
try:
    an.messages.create(model="anthropic/mock-claude", max_tokens=16, messages=ASK, metadata={"user_id": "spender"})
    check(False, "anthropic sdk: the spent player must be refused")
except anthropic.APIStatusError as e:
    check(e.status_code == 402, f"anthropic sdk: a spent player gets 402, not {e.status_code}")
print("end users ok")
