// mistral-local playground: a chat page that talks only to this origin's OpenRouter-compatible API.
// Conversations live in this browser's local storage; the key in session or local storage (the user's choice).
"use strict";

const API = "/api/v1";
const STORE = "mistral-local.conversations";
const KEY = "mistral-local.key";
const STATUS_EVERY_MS = 5000;
const $ = (id) => document.getElementById(id);

const state = { conversations: [], current: null, attachments: [], controller: null, model: null };

// ---- storage ---------------------------------------------------------------------------------------------------

function loadConversations() {
  try {
    state.conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
  } catch {
    state.conversations = [];
  }
  state.current = state.conversations[0] || newConversation();
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(state.conversations));
}

function apiKey() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

function storeKey(key, remember) {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (key) (remember ? localStorage : sessionStorage).setItem(KEY, key);
}

function newConversation() {
  const conv = { id: crypto.randomUUID(), title: "New chat", created: Date.now(), messages: [] };
  state.conversations.unshift(conv);
  return conv;
}

// ---- HTTP --------------------------------------------------------------------------------------------------------

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body.error) return `${response.status}: ${body.error.message}`;
  } catch {
    /* not JSON */
  }
  return `${response.status}: ${response.statusText}`;
}

async function refreshStatus() {
  try {
    const r = await fetch("/status", { headers: headers() });
    if (r.status === 401 || r.status === 403) {
      $("status").textContent = `key needed (${await errorText(r)})`;
      return;
    }
    const s = await r.json();
    const engine = s.draining ? "shutting down" : s.engine.ready ? "engine ready" : `engine ${s.engine.state}`;
    $("status").textContent = `${engine} · ${s.in_flight} in flight · ${s.waiting} queued · ${s.model}`;
    state.model = state.model || s.model;
  } catch {
    $("status").textContent = "server unreachable";
  }
}

async function servedModel() {
  if (state.model) return state.model;
  const r = await fetch(`${API}/models`, { headers: headers() });
  if (!r.ok) throw new Error(await errorText(r));
  const body = await r.json();
  state.model = body.data[0].id;
  return state.model;
}

// ---- rendering ---------------------------------------------------------------------------------------------------

function markdown(text) {
  const html = DOMPurify.sanitize(marked.parse(text || ""));
  const box = document.createElement("div");
  box.innerHTML = html;
  box.querySelectorAll("pre code").forEach((el) => hljs.highlightElement(el));
  return box;
}

function textOf(content) {
  if (typeof content === "string") return content;
  return content.filter((p) => p.type === "text").map((p) => p.text).join("\n");
}

function renderBody(message) {
  const body = document.createElement("div");
  body.className = "body";
  if (message.role === "user") {
    const p = document.createElement("p");
    p.textContent = textOf(message.content);
    body.append(p);
    if (Array.isArray(message.content)) {
      for (const part of message.content.filter((x) => x.type === "image_url")) {
        const img = document.createElement("img");
        img.src = part.image_url.url;
        img.alt = "attached image";
        body.append(img);
      }
    }
  } else {
    body.append(markdown(message.content || ""));
    for (const call of message.tool_calls || []) {
      const box = document.createElement("div");
      box.className = "tool-call";
      const code = document.createElement("code");
      code.textContent = `${call.function.name}(${call.function.arguments})`;
      box.append("Tool call: ", code);
      body.append(box);
    }
  }
  return body;
}

function figures(meta) {
  const box = document.createElement("div");
  box.className = "figures";
  const parts = [];
  if (meta.ttft_ms != null) parts.push(`TTFT ${Math.round(meta.ttft_ms)} ms`);
  if (meta.tokens_per_s != null) parts.push(`${meta.tokens_per_s.toFixed(1)} tok/s`);
  if (meta.prompt_tokens != null) parts.push(`${meta.prompt_tokens} in / ${meta.completion_tokens} out`);
  if (meta.finish) parts.push(`finish: ${meta.finish}`);
  for (const text of parts) {
    const span = document.createElement("span");
    span.textContent = text;
    box.append(span);
  }
  return box;
}

function actionButton(label, handler) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", handler);
  return b;
}

function renderMessage(message, index) {
  const el = document.createElement("article");
  el.className = `message ${message.role}`;
  el.dataset.index = index;
  el.setAttribute("aria-label", message.role === "user" ? "You" : "Assistant");
  el.append(renderBody(message));
  const actions = document.createElement("div");
  actions.className = "actions";
  if (message.role === "assistant") {
    if (message.meta) el.append(figures(message.meta));
    actions.append(actionButton("Copy", () => copy(message.content || "")));
    if (index === state.current.messages.length - 1) actions.append(actionButton("Regenerate", regenerate));
  } else {
    actions.append(actionButton("Edit", () => edit(index, el)));
    actions.append(actionButton("Copy", () => copy(textOf(message.content))));
  }
  el.append(actions);
  return el;
}

function render() {
  const box = $("messages");
  box.replaceChildren(...state.current.messages.map(renderMessage));
  box.scrollTop = box.scrollHeight;
  const list = $("conversations");
  list.replaceChildren(
    ...state.conversations.map((c) => {
      const li = document.createElement("li");
      const b = actionButton(c.title, () => {
        state.current = c;
        render();
      });
      b.setAttribute("aria-current", String(c === state.current));
      li.append(b);
      return li;
    }),
  );
}

function showError(text) {
  const el = $("error");
  el.textContent = text;
  el.hidden = !text;
}

// ---- composing -------------------------------------------------------------------------------------------------

function addImage(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const reader = new FileReader();
  reader.onload = () => {
    state.attachments.push(reader.result);
    renderAttachments();
  };
  reader.readAsDataURL(file);
}

function renderAttachments() {
  $("attachments").replaceChildren(
    ...state.attachments.map((url, i) => {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = url;
      img.alt = `attached image ${i + 1}`;
      const remove = actionButton("×", () => {
        state.attachments.splice(i, 1);
        renderAttachments();
      });
      remove.setAttribute("aria-label", `remove image ${i + 1}`);
      fig.append(img, remove);
      return fig;
    }),
  );
}

function userContent(text) {
  if (!state.attachments.length) return text;
  return [{ type: "text", text }, ...state.attachments.map((url) => ({ type: "image_url", image_url: { url } }))];
}

function requestBody(model) {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const m of state.current.messages) {
    const entry = { role: m.role, content: m.content };
    if (m.tool_calls && m.tool_calls.length) entry.tool_calls = m.tool_calls;
    messages.push(entry);
  }
  const body = {
    model,
    messages,
    stream: true,
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
  };
  if ($("json-mode").checked) body.response_format = { type: "json_object" };
  const tools = $("tools").value.trim();
  if (tools) {
    try {
      body.tools = JSON.parse(tools);
    } catch (err) {
      throw new Error(`Tools are not valid JSON: ${err.message}`);
    }
    const choice = $("tool-choice").value;
    body.tool_choice = choice.startsWith("fn:") ? { type: "function", function: { name: choice.slice(3) } } : choice;
  }
  return body;
}

function refreshToolChoices() {
  const select = $("tool-choice");
  const kept = select.value;
  let names = [];
  try {
    names = JSON.parse($("tools").value || "[]").map((t) => t.function && t.function.name).filter(Boolean);
  } catch {
    /* not JSON yet: the request will say so */
  }
  const options = ["auto", "required", "none", ...names.map((n) => `fn:${n}`)];
  select.replaceChildren(
    ...options.map((value) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = value.startsWith("fn:") ? `call ${value.slice(3)}` : value;
      return o;
    }),
  );
  select.value = options.includes(kept) ? kept : "auto";
}

// ---- streaming -------------------------------------------------------------------------------------------------

function applyChunk(chunk, reply, timing) {
  if (chunk.error) throw new Error(`${chunk.error.code}: ${chunk.error.message}`);
  if (chunk.usage) {
    reply.meta.prompt_tokens = chunk.usage.prompt_tokens;
    reply.meta.completion_tokens = chunk.usage.completion_tokens;
  }
  const choice = chunk.choices && chunk.choices[0];
  if (!choice) return;
  const delta = choice.delta || {};
  if (delta.content || delta.tool_calls) {
    if (timing.first == null) timing.first = performance.now();
    timing.last = performance.now();
  }
  if (delta.content) reply.content += delta.content;
  for (const call of delta.tool_calls || []) {
    const slot = (reply.tool_calls[call.index || 0] ||= { id: "", type: "function", function: { name: "", arguments: "" } });
    if (call.id) slot.id = call.id;
    if (call.function && call.function.name) slot.function.name += call.function.name;
    if (call.function && call.function.arguments) slot.function.arguments += call.function.arguments;
  }
  if (choice.finish_reason) timing.finish = choice.finish_reason; // shown with the other figures, at the end
}

async function readStream(response, reply, timing, onUpdate) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue; // ": OPENROUTER PROCESSING" comments and the like
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        applyChunk(JSON.parse(data), reply, timing);
      }
      onUpdate();
    }
  }
}

function finishTiming(reply, timing) {
  reply.meta.finish ||= timing.finish;
  if (timing.first != null) reply.meta.ttft_ms = timing.first - timing.start;
  const out = reply.meta.completion_tokens;
  if (out > 1 && timing.last > timing.first) reply.meta.tokens_per_s = (out - 1) / ((timing.last - timing.first) / 1000);
}

async function generate() {
  showError("");
  const reply = { role: "assistant", content: "", tool_calls: [], meta: {} };
  state.current.messages.push(reply);
  const index = state.current.messages.length - 1;
  const timing = { start: performance.now(), first: null, last: null, finish: null };
  state.controller = new AbortController();
  setBusy(true);
  let pending = false;
  const update = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const old = $("messages").querySelector(`[data-index="${index}"]`);
      if (old) old.replaceWith(renderMessage(reply, index));
      $("messages").scrollTop = $("messages").scrollHeight;
    });
  };
  render();
  try {
    const body = requestBody(await servedModel());
    body.messages.pop(); // the empty reply being written
    const response = await fetch(`${API}/chat/completions`, {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(body),
      signal: state.controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    await readStream(response, reply, timing, update);
  } catch (err) {
    if (err.name === "AbortError") {
      reply.meta.finish = "stopped";
    } else {
      reply.meta.finish = "error";
      showError(err.message.startsWith("401") ? `${err.message} (set your API key)` : err.message);
      if (!reply.content && !reply.tool_calls.length) state.current.messages.pop();
    }
  } finally {
    finishTiming(reply, timing);
    state.controller = null;
    setBusy(false);
    save();
    render();
  }
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  document.body.setAttribute("aria-busy", String(busy));
}

function send() {
  const text = $("input").value.trim();
  if ((!text && !state.attachments.length) || state.controller) return;
  const conv = state.current;
  conv.messages.push({ role: "user", content: userContent(text) });
  if (conv.title === "New chat") conv.title = text.slice(0, 48) || "Image";
  $("input").value = "";
  state.attachments = [];
  renderAttachments();
  generate();
}

function stop() {
  if (state.controller) state.controller.abort();
}

function regenerate() {
  const msgs = state.current.messages;
  if (state.controller || !msgs.length || msgs[msgs.length - 1].role !== "assistant") return;
  msgs.pop();
  generate();
}

function edit(index, el) {
  if (state.controller) return;
  const message = state.current.messages[index];
  const area = document.createElement("textarea");
  area.value = textOf(message.content);
  area.setAttribute("aria-label", "Edit message");
  area.rows = 3;
  const resend = actionButton("Save and resend", () => {
    const images = Array.isArray(message.content) ? message.content.filter((p) => p.type === "image_url") : [];
    message.content = images.length ? [{ type: "text", text: area.value }, ...images] : area.value;
    state.current.messages.splice(index + 1);
    generate();
  });
  el.replaceChildren(area, resend, actionButton("Cancel", render));
  area.focus();
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

// ---- conversations: export, import, clear ------------------------------------------------------------------------

function exportAll() {
  const blob = new Blob([JSON.stringify(state.conversations, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `mistral-local-conversations-${new Date().toISOString().slice(0, 10)}.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

async function importAll(file) {
  try {
    const items = JSON.parse(await file.text());
    if (!Array.isArray(items) || !items.every((c) => c && Array.isArray(c.messages))) throw new Error("not an export");
    const known = new Set(state.conversations.map((c) => c.id));
    state.conversations.push(...items.filter((c) => !known.has(c.id)));
    save();
    render();
  } catch (err) {
    showError(`Import failed: ${err.message}`);
  }
}

function clearAll() {
  if (!confirm("Delete every conversation stored in this browser?")) return;
  state.conversations = [];
  state.current = newConversation();
  save();
  render();
}

// ---- wiring ------------------------------------------------------------------------------------------------------

function wire() {
  $("send").addEventListener("click", send);
  $("stop").addEventListener("click", stop);
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") stop();
  });
  $("file").addEventListener("change", (e) => {
    [...e.target.files].forEach(addImage);
    e.target.value = "";
  });
  $("input").addEventListener("paste", (e) => {
    const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (files.length) {
      e.preventDefault();
      files.forEach(addImage);
    }
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (e) => {
    e.preventDefault();
    composer.classList.add("dragging");
  });
  composer.addEventListener("dragleave", () => composer.classList.remove("dragging"));
  composer.addEventListener("drop", (e) => {
    e.preventDefault();
    composer.classList.remove("dragging");
    [...e.dataTransfer.files].forEach(addImage);
  });
  $("tools").addEventListener("input", refreshToolChoices);
  $("new-chat").addEventListener("click", () => {
    state.current = newConversation();
    save();
    render();
  });
  $("export").addEventListener("click", exportAll);
  $("import").addEventListener("change", (e) => e.target.files[0] && importAll(e.target.files[0]));
  $("clear-all").addEventListener("click", clearAll);
  $("toggle-sidebar").addEventListener("click", () => {
    const open = $("sidebar").classList.toggle("open");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  });
  const dialog = $("key-dialog");
  $("key-button").addEventListener("click", () => {
    $("key-input").value = apiKey();
    $("key-remember").checked = Boolean(localStorage.getItem(KEY));
    dialog.showModal();
  });
  $("key-cancel").addEventListener("click", () => dialog.close());
  $("key-save").addEventListener("click", () => {
    storeKey($("key-input").value.trim(), $("key-remember").checked);
    dialog.close();
    showError("");
    refreshStatus();
  });
}

loadConversations();
wire();
render();
refreshStatus();
setInterval(refreshStatus, STATUS_EVERY_MS);
