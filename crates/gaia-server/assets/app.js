// Gaia web chat: streaming, stop, sidebar actions, theme. Plain JS, no build step.
(function () {
  "use strict";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // htmx requests carry the CSRF token.
  document.addEventListener("htmx:configRequest", (e) => { e.detail.headers["x-csrf-token"] = csrf; });

  function toast(message) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const t = document.createElement("div");
    t.className = "toast";
    t.setAttribute("role", "alert");
    t.textContent = message;
    box.appendChild(t);
    setTimeout(() => t.remove(), 6000);
  }

  async function errorMessage(resp) {
    try {
      const v = await resp.json();
      return v.detail || (v.error && v.error.message) || resp.statusText;
    } catch (_) {
      return resp.status + " " + resp.statusText;
    }
  }

  async function api(method, url, body) {
    const resp = await fetch(url, {
      method,
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!resp.ok) throw new Error(await errorMessage(resp));
    return resp;
  }

  // Theme: remembered in the browser and in the user's settings.
  const stored = localStorage.getItem("gaia-theme");
  if (stored) document.documentElement.dataset.theme = stored;
  const themeBtn = document.getElementById("theme");
  if (themeBtn) {
    themeBtn.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "light" ? "dark" : "light";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("gaia-theme", next);
      api("PATCH", "/api/v1/settings", { theme: next }).catch((e) => toast(e.message));
    });
  }

  const chat = document.querySelector("main.chat");
  if (!chat) return;
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const sendBtn = document.getElementById("send");
  const stopBtn = document.getElementById("stop");
  let conversation = chat.dataset.conversation || "";
  let controller = null;

  const scrollDown = () => { list.scrollTop = list.scrollHeight; };
  scrollDown();

  function bubble(role, text) {
    const welcome = list.querySelector(".welcome");
    if (welcome) welcome.remove();
    const a = document.createElement("article");
    a.className = "msg " + role;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = text;
    a.append(who, body);
    list.appendChild(a);
    scrollDown();
    return body;
  }

  async function refreshSidebar() {
    if (window.htmx) {
      const q = document.getElementById("search");
      htmx.ajax("GET", "/ui/conversations?current=" + encodeURIComponent(conversation) + "&q=" + encodeURIComponent(q ? q.value : ""), { target: "#conv-list" });
    }
  }

  async function reloadMessages() {
    if (!conversation) return;
    const resp = await fetch("/ui/conversations/" + encodeURIComponent(conversation) + "/messages", { credentials: "same-origin" });
    if (resp.ok) { list.innerHTML = await resp.text(); scrollDown(); }
  }

  function busy(on) {
    sendBtn.disabled = on;
    stopBtn.hidden = !on;
    chat.classList.toggle("busy", on);
  }

  async function send(text) {
    bubble("user", text);
    const answer = bubble("assistant", "");
    answer.parentElement.classList.add("typing");
    const body = { message: text, stream: true };
    if (conversation) body.conversation_id = conversation;
    const model = document.getElementById("model");
    if (model && model.value) body.model = model.value;
    const persona = document.getElementById("persona");
    if (persona && persona.value) body.persona_id = persona.value;
    controller = new AbortController();
    busy(true);
    let failed = false;
    try {
      const resp = await fetch("/api/v1/chat", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf, accept: "text/event-stream" },
        body: JSON.stringify(body),
        signal: controller.signal,
        credentials: "same-origin",
      });
      if (!resp.ok) throw new Error(await errorMessage(resp));
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (!data || data === "[DONE]") continue;
          let ev;
          try { ev = JSON.parse(data); } catch (_) { continue; }
          if (ev.type === "metadata" && ev.conversation_id) {
            if (!conversation) {
              conversation = ev.conversation_id;
              chat.dataset.conversation = conversation;
              history.replaceState(null, "", "/chat/" + conversation);
              refreshSidebar();
            }
          } else if (ev.error) {
            failed = true;
            toast(ev.error.message || "The model failed");
          } else if (ev.choices && ev.choices[0] && ev.choices[0].delta && ev.choices[0].delta.content) {
            answer.parentElement.classList.remove("typing");
            answer.textContent += ev.choices[0].delta.content;
            scrollDown();
          }
        }
      }
    } catch (e) {
      if (e.name !== "AbortError") { failed = true; toast(e.message); }
    } finally {
      busy(false);
      controller = null;
      answer.parentElement.classList.remove("typing");
    }
    // Show the stored, rendered (Markdown, sanitised) messages; the server keeps a stopped answer.
    setTimeout(() => { reloadMessages(); refreshSidebar(); }, failed ? 0 : 150);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    send(text);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  stopBtn.addEventListener("click", () => { if (controller) controller.abort(); });

  document.getElementById("conv-list").addEventListener("click", async (e) => {
    const btn = e.target.closest("button");
    if (!btn) return;
    const id = btn.dataset.id;
    try {
      if (btn.classList.contains("rename")) {
        const title = prompt("New title");
        if (title === null) return;
        await api("PATCH", "/api/v1/conversations/" + encodeURIComponent(id), { title });
        if (id === conversation) document.getElementById("conv-title").textContent = title || "Untitled";
        refreshSidebar();
      } else if (btn.classList.contains("delete")) {
        if (!confirm("Delete this conversation?")) return;
        await api("DELETE", "/api/v1/conversations/" + encodeURIComponent(id));
        if (id === conversation) { window.location.href = "/chat"; return; }
        refreshSidebar();
      }
    } catch (err) { toast(err.message); }
  });

  const personaSel = document.getElementById("persona");
  if (personaSel) {
    personaSel.addEventListener("change", () => {
      if (conversation) api("PATCH", "/api/v1/conversations/" + encodeURIComponent(conversation), { persona_id: personaSel.value }).catch((e) => toast(e.message));
    });
  }
})();
