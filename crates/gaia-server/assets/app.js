// Gaia web chat: streaming, stop, sidebar actions, theme. Plain JS, no build step.
(function () {
  "use strict";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // htmx requests carry the CSRF token.
  document.addEventListener("htmx:configRequest", (e) => { e.detail.headers["x-csrf-token"] = csrf; });

  // An invitation link (`/register#invite=TOKEN`) fills the invitation field. The token travels in the
  // URL's fragment, which browsers never send: it stays out of server and proxy logs.
  const inviteField = document.querySelector('input[name="invite_token"]');
  const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
  if (inviteField && invite && !inviteField.value) {
    inviteField.value = invite;
    history.replaceState(null, "", location.pathname + location.search);
  }

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

  // Settings page: the theme saved there is also the browser's.
  const settingsForm = document.getElementById("settings-form");
  if (settingsForm) {
    settingsForm.addEventListener("submit", () => {
      const t = document.getElementById("theme-select");
      if (t) localStorage.setItem("gaia-theme", t.value);
    });
  }

  const chat = document.querySelector("main.chat");
  // Forms that change something irreversible ask first (the admin console's revoke and delete buttons).
  document.addEventListener("submit", (e) => {
    const msg = e.target instanceof HTMLFormElement ? e.target.dataset.confirm : undefined;
    if (msg && !confirm(msg)) e.preventDefault();
  });

  if (!chat) return;
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const sendBtn = document.getElementById("send");
  const stopBtn = document.getElementById("stop");
  const regenBtn = document.getElementById("regen");
  const pendingBox = document.getElementById("pending");
  const imageInput = document.getElementById("image-input");
  let conversation = chat.dataset.conversation || "";
  let controller = null;
  // Uploaded images waiting to be sent: {id, url (a local preview)}.
  let pending = [];
  let uploads = 0;

  const scrollDown = () => { list.scrollTop = list.scrollHeight; };
  scrollDown();

  function renderPending() {
    pendingBox.innerHTML = "";
    pendingBox.hidden = pending.length === 0;
    for (const p of pending) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = p.url;
      img.alt = p.name || "image";
      const x = document.createElement("button");
      x.type = "button";
      x.className = "unattach";
      x.title = "Remove";
      x.textContent = "✕";
      x.addEventListener("click", () => { pending = pending.filter((q) => q !== p); renderPending(); });
      fig.append(img, x);
      pendingBox.appendChild(fig);
    }
  }

  async function upload(file) {
    if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) { toast(file.name + ": only PNG, JPEG, GIF and WebP images can be attached"); return; }
    uploads++;
    sendBtn.disabled = true;
    try {
      const fd = new FormData();
      fd.append("file", file, file.name || "image");
      const resp = await fetch("/api/v1/attachments", { method: "POST", headers: { "x-csrf-token": csrf }, body: fd, credentials: "same-origin" });
      if (!resp.ok) throw new Error(await errorMessage(resp));
      const a = await resp.json();
      pending.push({ id: a.id, url: URL.createObjectURL(file), name: a.file_name });
      renderPending();
    } catch (e) {
      toast(e.message);
    } finally {
      uploads--;
      if (!uploads && !controller) sendBtn.disabled = false;
    }
  }

  function uploadAll(files) { for (const f of files) upload(f); }
  imageInput.addEventListener("change", () => { uploadAll(Array.from(imageInput.files)); imageInput.value = ""; });
  input.addEventListener("paste", (e) => {
    const files = Array.from(e.clipboardData ? e.clipboardData.files : []).filter((f) => f.type.startsWith("image/"));
    if (files.length) { e.preventDefault(); uploadAll(files); }
  });
  form.addEventListener("dragover", (e) => { e.preventDefault(); });
  form.addEventListener("drop", (e) => {
    e.preventDefault();
    uploadAll(Array.from(e.dataTransfer ? e.dataTransfer.files : []));
  });

  function bubble(role, text, images) {
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
    a.append(who);
    if (images && images.length) {
      const box = document.createElement("div");
      box.className = "images";
      for (const p of images) {
        const img = document.createElement("img");
        img.src = p.url;
        img.alt = p.name || "image";
        box.appendChild(img);
      }
      a.append(box);
    }
    a.append(body);
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
    sendBtn.disabled = on || uploads > 0;
    stopBtn.hidden = !on;
    if (on) regenBtn.hidden = true;
    chat.classList.toggle("busy", on);
  }

  // Sends a message (or, with `regenerate`, asks for the last answer again) and streams the answer.
  async function send(text, images, regenerate) {
    if (regenerate) {
      // The old answer(s) after the last user message go away.
      const all = Array.from(list.querySelectorAll("article.msg"));
      let i = all.length - 1;
      while (i >= 0 && !all[i].classList.contains("user")) { all[i].remove(); i--; }
    } else {
      bubble("user", text, images);
    }
    const answer = bubble("assistant", "");
    answer.parentElement.classList.add("typing");
    const body = regenerate ? { regenerate: true, stream: true } : { message: text, stream: true };
    if (images && images.length) body.attachments = images.map((p) => p.id);
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
              live.subscribe(conversation);
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
      controller = null;
      busy(false);
      answer.parentElement.classList.remove("typing");
      regenBtn.hidden = !conversation;
    }
    // Show the stored, rendered (Markdown, sanitised) messages; the server keeps a stopped answer.
    setTimeout(() => { reloadMessages(); refreshSidebar(); }, failed ? 0 : 150);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if ((!text && !pending.length) || controller || uploads) return;
    const images = pending;
    pending = [];
    renderPending();
    input.value = "";
    send(text, images, false);
  });
  regenBtn.addEventListener("click", () => { if (!controller && conversation) send("", [], true); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  stopBtn.addEventListener("click", () => { if (controller) controller.abort(); });

  // Live updates: another tab (or app) adding messages to this conversation, renames, deletions.
  const live = (() => {
    let ws = null;
    let delay = 1000;
    let timer = null;
    const debounce = (f) => { clearTimeout(timer); timer = setTimeout(f, 100); };
    function connect() {
      const proto = location.protocol === "https:" ? "wss://" : "ws://";
      ws = new WebSocket(proto + location.host + "/ws/chat");
      ws.addEventListener("open", () => { delay = 1000; if (conversation) subscribe(conversation); });
      ws.addEventListener("message", (m) => {
        let ev;
        try { ev = JSON.parse(m.data); } catch (_) { return; }
        if (ev.type === "message_created" && ev.conversation_id === conversation) {
          // A stream of our own ends with a reload anyway.
          if (!controller && !list.querySelector('[data-id="' + ev.message.id + '"]')) debounce(() => { reloadMessages(); regenBtn.hidden = false; });
        } else if (ev.type === "conversation_updated") {
          if (ev.conversation_id === conversation) {
            if (!ev.conversation) { toast("This conversation was deleted."); window.location.href = "/chat"; return; }
            document.getElementById("conv-title").textContent = ev.conversation.title || "Untitled";
          }
          refreshSidebar();
        } else if (ev.type === "resync") {
          if (!controller) reloadMessages();
          refreshSidebar();
        } else if (ev.type === "presence" && ev.conversation_id === conversation) {
          showPresence(ev);
        } else if (ev.type === "typing" && ev.conversation_id === conversation) {
          showTyping(ev);
        } else if (ev.type === "unsubscribed" && ev.reason && ev.conversation_id === conversation) {
          toast("This conversation is no longer shared with you.");
        }
      });
      ws.addEventListener("close", () => {
        ws = null;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      });
    }
    function subscribe(id) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "subscribe", conversation_id: id }));
    }
    function typing(on) {
      if (conversation && ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "typing", conversation_id: conversation, typing: on }));
      }
    }
    connect();
    return { subscribe, typing };
  })();

  // Presence: who else has this conversation open (on any instance), and who is typing.
  const presenceBox = document.getElementById("presence");
  const typingBox = document.getElementById("typing");
  const me = chat.dataset.user || "";
  const typists = new Map(); // user id -> {name, timer}
  function showPresence(ev) {
    const others = (ev.participants || []).filter((x) => x.user_id !== me).map((x) => x.name);
    const more = Math.max(0, (ev.count || 0) - (ev.participants || []).length);
    presenceBox.textContent = others.length ? "Here now: " + others.join(", ") + (more ? " and " + more + " more" : "") : "";
    presenceBox.hidden = !others.length;
  }
  function renderTyping() {
    const names = Array.from(typists.values()).map((t) => t.name);
    typingBox.textContent = names.length === 0 ? "" : names.join(", ") + (names.length === 1 ? " is typing…" : " are typing…");
    typingBox.hidden = names.length === 0;
  }
  function showTyping(ev) {
    const old = typists.get(ev.user_id);
    if (old) clearTimeout(old.timer);
    if (ev.typing) {
      // An indicator not repeated within 6 s goes away (the sender may have lost its connection).
      typists.set(ev.user_id, { name: ev.name, timer: setTimeout(() => { typists.delete(ev.user_id); renderTyping(); }, 6000) });
    } else {
      typists.delete(ev.user_id);
    }
    renderTyping();
  }
  // Our own typing: said at most every 2.5 s while keys are pressed, withdrawn after 4 s of quiet or on send.
  let typingSince = 0;
  let typingQuiet = null;
  function stopTyping() {
    clearTimeout(typingQuiet);
    if (typingSince) { typingSince = 0; live.typing(false); }
  }
  input.addEventListener("input", () => {
    const now = Date.now();
    if (now - typingSince > 2500) { typingSince = now; live.typing(true); }
    clearTimeout(typingQuiet);
    typingQuiet = setTimeout(stopTyping, 4000);
  });
  input.addEventListener("blur", stopTyping);
  form.addEventListener("submit", stopTyping);

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
