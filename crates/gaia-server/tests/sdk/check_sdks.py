"""Drives Gaia's compatible endpoints with the official OpenAI and Anthropic Python SDKs.

Only base_url and api_key are changed. Run by tests/sdk.rs with GAIA_URL and GAIA_KEY set.
"""
import os
import sys

import anthropic
import openai

BASE = os.environ["GAIA_URL"]
KEY = os.environ["GAIA_KEY"]
MODELS = ["openai/mock-gpt", "anthropic/mock-claude"]
ASK = [{"role": "user", "content": "Is it foggy?"}]
WANT = "Mock reply to: Is it foggy?"


def check(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


oa = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0)
oa_tools = [{"type": "function", "function": {"name": "search_kb", "description": "Search the world",
             "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
for model in MODELS:
    r = oa.chat.completions.create(model=model, messages=ASK)
    check(r.choices[0].message.content == WANT, f"openai sdk text via {model}: {r}")
    check(r.usage.completion_tokens == 6, f"openai sdk usage via {model}")
    text, usage = "", None
    for chunk in oa.chat.completions.create(model=model, messages=ASK, stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    check(text == WANT, f"openai sdk stream via {model}: {text!r}")
    check(usage is not None and usage.completion_tokens == 6, f"openai sdk stream usage via {model}")
    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "call tool search_kb fog rules"}], tools=oa_tools)
    call = r.choices[0].message.tool_calls[0]
    check(call.function.name == "search_kb" and r.choices[0].finish_reason == "tool_calls", f"openai sdk tools via {model}")
    follow = oa.chat.completions.create(model=model, tools=oa_tools, messages=[
        {"role": "user", "content": "call tool search_kb fog rules"},
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Fog: zombies 1.2x"},
    ])
    check(follow.choices[0].message.content == "Tool result received: Fog: zombies 1.2x", f"openai sdk tool result via {model}")
check(any(m.id == "mock-gpt" for m in oa.models.list()), "openai sdk models.list")
check(oa.models.retrieve("anthropic/mock-claude").owned_by == "anthropic", "openai sdk models.retrieve provider/model")
# What a ported client relies on: limits, stop sequences, tool_choice, and errors, across vendors.
for model in MODELS:
    r = oa.chat.completions.create(model=model, messages=ASK, max_completion_tokens=2)
    check(r.choices[0].finish_reason == "length" and r.choices[0].message.content == "Mock reply", f"openai sdk length via {model}: {r}")
    r = oa.chat.completions.create(model=model, messages=ASK, stop=["foggy"], temperature=0.5, response_format={"type": "text"})
    check(r.choices[0].message.content == "Mock reply to: Is it " and r.choices[0].finish_reason == "stop", f"openai sdk stop via {model}: {r}")
    r = oa.chat.completions.create(model=model, messages=ASK, tools=oa_tools, tool_choice={"type": "function", "function": {"name": "search_kb"}})
    check(r.choices[0].finish_reason == "stop", f"openai sdk named tool_choice via {model}: {r}")
    try:
        for _ in oa.chat.completions.create(model=model.split("/")[0] + "/mock-disconnect", messages=ASK, stream=True):
            pass
        check(False, f"openai sdk broken stream via {model} must raise")
    except openai.APIError:
        pass
try:
    oa.chat.completions.create(model="mock-gpt", messages=ASK, n=2)
    check(False, "openai sdk n=2 must raise")
except openai.BadRequestError as e:
    check("`n` must be 1" in e.message, f"openai sdk n=2 message: {e.message}")
try:
    oa.chat.completions.create(model="mock-gpt", messages=ASK, tools=[{"type": "function", "function": {"name": "t", "parameters": {"type": "string"}}}])
    check(False, "openai sdk bad tool schema must raise")
except openai.BadRequestError:
    pass
try:
    oa.chat.completions.create(model="no-such-model", messages=ASK)
    check(False, "openai sdk unknown model must raise")
except openai.NotFoundError:
    pass
try:
    openai.OpenAI(base_url=BASE + "/v1", api_key="gaia_wrong", max_retries=0).chat.completions.create(model="mock-gpt", messages=ASK)
    check(False, "openai sdk bad key must raise")
except openai.AuthenticationError:
    pass
try:
    oa.chat.completions.create(model="openai/mock-error-429", messages=ASK)
    check(False, "openai sdk 429 must raise")
except openai.RateLimitError:
    pass

an = anthropic.Anthropic(base_url=BASE, api_key=KEY, max_retries=0)
an_tools = [{"name": "search_kb", "description": "Search the world",
             "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]
for model in MODELS:
    m = an.messages.create(model=model, max_tokens=100, system="Be Mara.", messages=ASK)
    check(m.content[0].text == WANT and m.stop_reason == "end_turn", f"anthropic sdk text via {model}: {m}")
    with an.messages.stream(model=model, max_tokens=100, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text == WANT, f"anthropic sdk stream via {model}: {text!r}")
    check(final.usage.output_tokens == 6, f"anthropic sdk stream usage via {model}: {final.usage}")
    m = an.messages.create(model=model, max_tokens=100, tools=an_tools, messages=[{"role": "user", "content": "call tool search_kb fog rules"}])
    block = [b for b in m.content if b.type == "tool_use"][0]
    check(m.stop_reason == "tool_use" and block.input == {"query": "fog rules"}, f"anthropic sdk tools via {model}: {m}")
    with an.messages.stream(model=model, max_tokens=100, tools=an_tools, messages=[{"role": "user", "content": "call tool search_kb fog rules"}]) as stream:
        final = stream.get_final_message()
    block = [b for b in final.content if b.type == "tool_use"][0]
    check(block.input == {"query": "fog rules"}, f"anthropic sdk streamed tool input via {model}: {final}")
    follow = an.messages.create(model=model, max_tokens=100, tools=an_tools, messages=[
        {"role": "user", "content": "call tool search_kb fog rules"},
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Fog: zombies 1.2x"}]},
    ])
    check(follow.content[0].text == "Tool result received: Fog: zombies 1.2x", f"anthropic sdk tool result via {model}")
for model in MODELS:
    m = an.messages.create(model=model, max_tokens=2, messages=ASK)
    check(m.stop_reason == "max_tokens" and m.content[0].text == "Mock reply", f"anthropic sdk max_tokens via {model}: {m}")
    m = an.messages.create(model=model, max_tokens=100, tools=an_tools, tool_choice={"type": "any"},
                           messages=[{"role": "user", "content": "call tool search_kb fog rules"}])
    check(m.stop_reason == "tool_use", f"anthropic sdk tool_choice any via {model}: {m}")
    try:
        with an.messages.stream(model=model.split("/")[0] + "/mock-disconnect", max_tokens=100, messages=ASK) as stream:
            for _ in stream:
                pass
        check(False, f"anthropic sdk broken stream via {model} must raise")
    except anthropic.APIError:
        pass
m = an.messages.create(model="anthropic/mock-claude", max_tokens=100, stop_sequences=["foggy"], messages=ASK)
check(m.stop_reason == "stop_sequence" and m.stop_sequence == "foggy", f"anthropic sdk stop_sequence: {m}")
with an.messages.stream(model="anthropic/mock-claude", max_tokens=100, stop_sequences=["foggy"], messages=ASK) as stream:
    final = stream.get_final_message()
check(final.stop_reason == "stop_sequence" and final.stop_sequence == "foggy", f"anthropic sdk streamed stop_sequence: {final}")
check(any(m.id == "mock-claude" for m in an.models.list()), "anthropic sdk models.list")
check(an.models.retrieve("anthropic/mock-claude").id == "anthropic/mock-claude", "anthropic sdk models.retrieve provider/model")
try:
    an.messages.create(model="mock-gpt", max_tokens=10, messages=ASK, tools=[{"name": "t", "input_schema": {"type": "array"}}])
    check(False, "anthropic sdk bad tool schema must raise")
except anthropic.BadRequestError:
    pass
try:
    an.messages.create(model="no-such-model", max_tokens=10, messages=ASK)
    check(False, "anthropic sdk unknown model must raise")
except anthropic.NotFoundError:
    pass
try:
    anthropic.Anthropic(base_url=BASE, api_key="gaia_wrong", max_retries=0).messages.create(model="mock-gpt", max_tokens=10, messages=ASK)
    check(False, "anthropic sdk bad key must raise")
except anthropic.AuthenticationError:
    pass
print("official SDKs ok")
