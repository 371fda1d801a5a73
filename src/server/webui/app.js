// gannet's chat page: conversations kept in this browser's local storage, answers streamed from
// POST /v1/chat/completions (server-sent events read with fetch), the context size from
// GET /props. Only the public API is used; the API key, when the server wants one, is asked for
// on the first 401 and kept in local storage.
//
// Text from the model or the user reaches the DOM as text nodes, or as HTML only through the
// markdown renderer (markdown.js), which escapes everything before adding its own tags.
import {setMarkdown} from './markdown.js';

const KEYS = {
  conversations: 'gannet.conversations',
  current: 'gannet.current',
  settings: 'gannet.settings',
  apiKey: 'gannet.apiKey',
};
const DEFAULT_SETTINGS = {system: '', temperature: 0.8, top_p: 0.95, max_tokens: null};
const SAVE_EVERY_MS = 1000;  // while an answer streams
const PROPS_RETRY_MS = 2000;  // while the server loads its model

const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'), list: $('conversation-list'), messages: $('messages'), prompt: $('prompt'),
  send: $('send'), stop: $('stop'), composer: $('composer'), modelInfo: $('model-info'),
  settings: $('settings'), toggleSettings: $('toggle-settings'), toggleSidebar: $('toggle-sidebar'),
  system: $('system-prompt'), temperature: $('temperature'), topP: $('top-p'),
  maxTokens: $('max-tokens'), keyDialog: $('key-dialog'), keyForm: $('key-form'),
  keyInput: $('key-input'), keyReason: $('key-reason'),
};

// ---- storage -------------------------------------------------------------------------------

function readJson(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key));
    return value === null ? fallback : value;
  } catch {
    return fallback;
  }
}

// Conversations as stored, keeping only well-formed entries (the storage is the user's to edit).
function loadConversations() {
  const raw = readJson(KEYS.conversations, []);
  if (!Array.isArray(raw)) return [];
  return raw.filter((c) => c && typeof c.id === 'string' && Array.isArray(c.messages)).map((c) => ({
    id: c.id,
    title: typeof c.title === 'string' ? c.title : 'Conversation',
    updated: Number(c.updated) || 0,
    messages: c.messages.filter((m) => m && typeof m.content === 'string' &&
                                       ['user', 'assistant', 'error'].includes(m.role)),
  }));
}

function loadSettings() {
  const raw = readJson(KEYS.settings, {});
  const s = {...DEFAULT_SETTINGS};
  if (raw && typeof raw.system === 'string') s.system = raw.system;
  for (const k of ['temperature', 'top_p', 'max_tokens']) {
    if (raw && (raw[k] === null || Number.isFinite(raw[k]))) s[k] = raw[k];
  }
  return s;
}

const state = {
  conversations: loadConversations(),
  currentId: localStorage.getItem(KEYS.current),
  settings: loadSettings(),
  nCtx: null,
  busy: null,  // the answer being generated: {conv, msg, controller, element}
  editing: null,  // index of the user message being edited
  lastSave: 0,
};

function save() {
  state.lastSave = Date.now();
  try {
    localStorage.setItem(KEYS.conversations, JSON.stringify(state.conversations));
    if (state.currentId) localStorage.setItem(KEYS.current, state.currentId);
    else localStorage.removeItem(KEYS.current);
  } catch (e) {
    ui.modelInfo.textContent = `Could not save the conversations: ${e.message}`;
  }
}

function current() {
  return state.conversations.find((c) => c.id === state.currentId) || null;
}

function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
}

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {}

let keyPrompt = null;  // the pending key question, shared by concurrent 401s

// Asks for the API key; resolves true when one was entered.
function askKey(reason) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    ui.keyReason.textContent = reason;
    ui.keyInput.value = '';
    ui.keyDialog.addEventListener('close', () => {
      keyPrompt = null;
      resolve(ui.keyDialog.returnValue === 'ok');
    }, {once: true});
    ui.keyDialog.returnValue = '';
    ui.keyDialog.showModal();
    ui.keyInput.focus();
  });
  return keyPrompt;
}

ui.keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const ok = e.submitter && e.submitter.value === 'ok';
  if (ok) {
    const key = ui.keyInput.value.trim();
    if (!key) {
      ui.keyInput.reportValidity();
      return;
    }
    localStorage.setItem(KEYS.apiKey, key);
  }
  ui.keyDialog.close(ok ? 'ok' : 'cancel');
});

// fetch with the stored key; on 401 asks for a key and tries again.
async function apiFetch(path, options = {}) {
  for (;;) {
    const headers = {'Content-Type': 'application/json'};
    const key = localStorage.getItem(KEYS.apiKey);
    if (key) headers.Authorization = `Bearer ${key}`;
    const resp = await fetch(path, {...options, headers});
    if (resp.status !== 401) return resp;
    const reason = key ? 'The server refused this API key. Enter the right one.'
                       : 'This server needs an API key.';
    if (!(await askKey(reason))) return resp;
  }
}

// The message of an error answer (OpenAI's {"error": {"message"}} shape, or the raw text).
async function errorMessage(resp) {
  const text = await resp.text();
  try {
    const j = JSON.parse(text);
    if (j && j.error && j.error.message) return `${resp.status}: ${j.error.message}`;
  } catch {
    // not JSON: show it as it came
  }
  return `${resp.status} ${resp.statusText}${text ? `: ${text.slice(0, 500)}` : ''}`;
}

// Calls onEvent with each server-sent event's JSON until [DONE] or the end of the body.
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const {value, done} = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), {stream: !done});
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = done ? '' : events.pop();
    for (const event of events) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:'))
                       .map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      let json;
      try {
        json = JSON.parse(data);
      } catch {
        continue;
      }
      if (json.error) throw new ApiError(json.error.message || JSON.stringify(json.error));
      onEvent(json);
    }
    if (done) return;
  }
}

async function loadProps() {
  try {
    const resp = await apiFetch('/props');
    if (!resp.ok) {
      ui.modelInfo.textContent = await errorMessage(resp);
      if (resp.status === 503) setTimeout(loadProps, PROPS_RETRY_MS);  // the model is loading
      return;
    }
    const props = await resp.json();
    state.nCtx = Number(props.n_ctx) || null;
    ui.modelInfo.textContent = `${props.model} · context ${state.nCtx ?? '?'} tokens`;
  } catch (e) {
    ui.modelInfo.textContent = `Server unreachable: ${e.message}`;
  }
}

// ---- generation ----------------------------------------------------------------------------

function requestBody(conv) {
  const messages = [];
  const system = state.settings.system.trim();
  if (system) messages.push({role: 'system', content: system});
  for (const m of conv.messages) {
    if (m.role === 'user' || (m.role === 'assistant' && m.content)) {
      messages.push({role: m.role, content: m.content});
    }
  }
  const body = {messages, stream: true, stream_options: {include_usage: true}};
  const s = state.settings;
  if (Number.isFinite(s.temperature)) body.temperature = s.temperature;
  if (Number.isFinite(s.top_p)) body.top_p = s.top_p;
  if (Number.isInteger(s.max_tokens) && s.max_tokens > 0) body.max_tokens = s.max_tokens;
  return body;
}

// Streams an answer to the conversation's last user message into a new assistant message.
async function generate(conv) {
  const msg = {role: 'assistant', content: ''};
  conv.messages.push(msg);
  conv.updated = Date.now();
  const busy = {conv, msg, controller: new AbortController(), element: null};
  state.busy = busy;
  render();
  const timing = {start: performance.now(), first: null, last: null, chunks: 0};
  let usage = null;
  let finish = null;
  try {
    const resp = await apiFetch('/v1/chat/completions', {
      method: 'POST', body: JSON.stringify(requestBody(conv)), signal: busy.controller.signal});
    if (!resp.ok) throw new ApiError(await errorMessage(resp));
    await readEvents(resp, (chunk) => {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) return;
      if (choice.finish_reason) finish = choice.finish_reason;
      const text = choice.delta && choice.delta.content;
      if (!text) return;
      timing.last = performance.now();
      timing.first ??= timing.last;
      timing.chunks++;
      msg.content += text;
      showProgress(busy);
    });
  } catch (e) {
    if (e.name === 'AbortError') {
      msg.stopped = true;
    } else {
      const error = {role: 'error', content: e instanceof ApiError ? e.message
                                                                  : `Request failed: ${e.message}`};
      if (msg.content) conv.messages.push(error);
      else conv.messages.splice(conv.messages.indexOf(msg), 1, error);
    }
  } finally {
    msg.stats = answerStats(timing, usage, finish);
    state.busy = null;
    save();
    render();
    ui.prompt.focus();
  }
}

function answerStats(timing, usage, finish) {
  const tokens = usage ? usage.completion_tokens : timing.chunks;
  const span = (timing.last - timing.first) / 1000;
  return {
    tokens,
    tokens_per_second: tokens > 1 && span > 0 ? (tokens - 1) / span : null,
    context: usage ? usage.prompt_tokens + usage.completion_tokens : null,
    n_ctx: state.nCtx,
    finish,
  };
}

let progressFrame = 0;

// Shows the streaming answer's text, at most once a frame; saves now and then.
function showProgress(busy) {
  if (!progressFrame) {
    progressFrame = requestAnimationFrame(() => {
      progressFrame = 0;
      if (state.busy !== busy || !busy.element) return;
      const stick = nearBottom();
      setMarkdown(busy.element, busy.msg.content);
      if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
    });
  }
  if (Date.now() - state.lastSave > SAVE_EVERY_MS) save();
}

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function stop() {
  if (state.busy) state.busy.controller.abort();
}

function titleOf(text) {
  return text.trim().replace(/\s+/g, ' ').slice(0, 48);
}

function send(text) {
  if (state.busy || !text.trim()) return;
  let conv = current();
  if (!conv) {
    conv = {id: newId(), title: '', updated: Date.now(), messages: []};
    state.conversations.push(conv);
    state.currentId = conv.id;
  }
  if (!conv.title) conv.title = titleOf(text);
  conv.messages.push({role: 'user', content: text});
  ui.prompt.value = '';
  save();
  generate(conv);
}

// Drops the answer (and any error) after the last user message and asks again.
function regenerate() {
  const conv = current();
  if (!conv || state.busy) return;
  while (conv.messages.length && conv.messages[conv.messages.length - 1].role !== 'user') {
    conv.messages.pop();
  }
  if (conv.messages.length) generate(conv);
}

function finishEdit(index, text) {
  const conv = current();
  state.editing = null;
  if (!conv || state.busy || !text.trim()) return render();
  conv.messages[index].content = text;
  conv.messages.length = index + 1;
  if (conv.messages.findIndex((m) => m.role === 'user') === index) conv.title = titleOf(text);
  save();
  generate(conv);
}

// ---- rendering -----------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else if (k in node && !k.startsWith('aria') && k !== 'role') node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function statsText(stats) {
  const parts = [`${stats.tokens} tokens`];
  if (stats.tokens_per_second) parts.push(`${stats.tokens_per_second.toFixed(1)} tok/s`);
  if (stats.context) parts.push(`context ${stats.context} / ${stats.n_ctx ?? '?'}`);
  if (stats.finish === 'length') parts.push('stopped at the token limit');
  return parts.join(' · ');
}

function editor(index, msg) {
  const area = el('textarea', {className: 'edit-box', rows: 3, 'aria-label': 'Edit message'});
  area.value = msg.content;
  const submit = () => finishEdit(index, area.value);
  const cancel = () => {
    state.editing = null;
    render();
  };
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    } else if (e.key === 'Escape') {
      e.stopPropagation();
      cancel();
    }
  });
  queueMicrotask(() => area.focus());
  return el('div', {className: 'editor'}, area,
            el('div', {className: 'actions'},
               el('button', {type: 'button', className: 'primary', text: 'Send', onclick: submit}),
               el('button', {type: 'button', text: 'Cancel', onclick: cancel})));
}

// A Copy button on each code block of a finished answer; where the clipboard is out of reach
// (a page not served over https or from localhost) the code is selected instead.
function addCopyButtons(content) {
  for (const block of content.querySelectorAll('.code-block')) {
    const code = block.querySelector('pre');
    const button = el('button', {type: 'button', className: 'copy', text: 'Copy',
                                 'aria-label': 'Copy this code'});
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(code.innerText);
        button.textContent = 'Copied';
      } catch {
        const range = document.createRange();
        range.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        button.textContent = 'Selected';
      }
      setTimeout(() => { button.textContent = 'Copy'; }, 1500);
    });
    block.prepend(button);
  }
}

function messageView(msg, index, conv) {
  const names = {user: 'You', assistant: 'Assistant', error: 'Error'};
  const view = el('article', {className: `message ${msg.role}`, 'aria-label': names[msg.role]});
  view.append(el('div', {className: 'role', text: names[msg.role]}));
  if (state.editing === index) {
    view.append(editor(index, msg));
    return view;
  }
  const content = el('div', {className: 'content'});
  if (msg.role === 'assistant') setMarkdown(content, msg.content);
  else content.textContent = msg.content;
  view.append(content);
  if (state.busy && state.busy.msg === msg) {
    state.busy.element = content;
    view.classList.add('streaming');
    return view;
  }
  addCopyButtons(content);
  const footer = el('div', {className: 'actions'});
  if (msg.stats) {
    const text = statsText(msg.stats) + (msg.stopped ? ' · stopped' : '');
    footer.append(el('span', {className: 'stats', text}));
  }
  if (msg.role === 'user') {
    footer.append(el('button', {type: 'button', text: 'Edit', disabled: !!state.busy,
                                'aria-label': 'Edit this message and answer again',
                                onclick: () => { state.editing = index; render(); }}));
  } else if (index === conv.messages.length - 1) {
    footer.append(el('button', {type: 'button', text: 'Regenerate', disabled: !!state.busy,
                                'aria-label': 'Regenerate the last answer', onclick: regenerate}));
  }
  view.append(footer);
  return view;
}

function renderList() {
  const sorted = [...state.conversations].sort((a, b) => b.updated - a.updated);
  ui.list.replaceChildren(...sorted.map((c) => {
    const selected = c.id === state.currentId;
    const open = el('button', {type: 'button', className: 'conversation', text: c.title || 'New chat',
                               disabled: !!state.busy, onclick: () => switchTo(c.id)});
    if (selected) open.setAttribute('aria-current', 'true');
    const remove = el('button', {type: 'button', className: 'delete', text: '×',
                                 disabled: !!state.busy,
                                 'aria-label': `Delete conversation: ${c.title || 'New chat'}`,
                                 onclick: () => removeConversation(c.id)});
    return el('li', {}, open, remove);
  }));
}

function render() {
  const conv = current();
  ui.messages.replaceChildren();
  if (conv) conv.messages.forEach((m, i) => ui.messages.append(messageView(m, i, conv)));
  else ui.messages.append(el('p', {className: 'empty', text: 'Start a conversation below.'}));
  ui.messages.scrollTop = ui.messages.scrollHeight;
  renderList();
  ui.send.disabled = !!state.busy;
  ui.stop.disabled = !state.busy;
  ui.app.classList.toggle('busy', !!state.busy);
  // Screen readers announce the answer once it is whole, not at every streamed token.
  ui.messages.setAttribute('aria-busy', String(!!state.busy));
  document.title = conv && conv.title ? `${conv.title} · gannet` : 'gannet';
}

function switchTo(id) {
  if (state.busy) return;
  state.currentId = id;
  state.editing = null;
  save();
  setSidebar(false);
  render();
  ui.prompt.focus();
}

function removeConversation(id) {
  if (state.busy) return;
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.currentId === id) state.currentId = null;
  save();
  render();
}

function setSidebar(open) {
  ui.app.classList.toggle('sidebar-open', open);
  ui.toggleSidebar.setAttribute('aria-expanded', String(open));
  ui.toggleSidebar.setAttribute('aria-label', open ? 'Hide conversations' : 'Show conversations');
}

function setSettings(open) {
  ui.settings.hidden = !open;
  ui.toggleSettings.setAttribute('aria-expanded', String(open));
  if (open) ui.system.focus();
}

// ---- settings and wiring -------------------------------------------------------------------

function showSettings() {
  const s = state.settings;
  ui.system.value = s.system;
  ui.temperature.value = Number.isFinite(s.temperature) ? s.temperature : '';
  ui.topP.value = Number.isFinite(s.top_p) ? s.top_p : '';
  ui.maxTokens.value = Number.isInteger(s.max_tokens) ? s.max_tokens : '';
}

function readSettings() {
  const num = (input) => (input.value.trim() === '' || !input.checkValidity()
                              ? null : Number(input.value));
  const maxTokens = num(ui.maxTokens);
  state.settings = {
    system: ui.system.value,
    temperature: num(ui.temperature),
    top_p: num(ui.topP),
    max_tokens: Number.isInteger(maxTokens) && maxTokens > 0 ? maxTokens : null,
  };
  localStorage.setItem(KEYS.settings, JSON.stringify(state.settings));
}

for (const input of [ui.system, ui.temperature, ui.topP, ui.maxTokens]) {
  input.addEventListener('change', readSettings);
}

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  send(ui.prompt.value);
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send(ui.prompt.value);
  }
});
ui.stop.addEventListener('click', stop);
// Escape stops the answer being generated, or else closes the conversation list (narrow screens).
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || ui.keyDialog.open) return;
  if (state.busy) {
    e.preventDefault();
    stop();
  } else if (ui.app.classList.contains('sidebar-open')) {
    setSidebar(false);
    ui.toggleSidebar.focus();
  }
});
$('new-chat').addEventListener('click', () => {
  if (state.busy) return;
  state.currentId = null;
  state.editing = null;
  save();
  setSidebar(false);
  render();
  ui.prompt.focus();
});
ui.toggleSidebar.addEventListener('click', () => {
  const open = !ui.app.classList.contains('sidebar-open');
  setSidebar(open);
  if (open) $('new-chat').focus();
});
document.querySelector('main').addEventListener('click', (e) => {
  if (ui.app.classList.contains('sidebar-open') && !ui.toggleSidebar.contains(e.target)) {
    setSidebar(false);
  }
});
ui.toggleSettings.addEventListener('click', () => setSettings(ui.settings.hidden));
$('close-settings').addEventListener('click', () => {
  setSettings(false);
  ui.toggleSettings.focus();
});
$('change-key').addEventListener('click', async () => {
  if (await askKey('Enter the API key for this server.')) loadProps();
});
window.addEventListener('storage', (e) => {
  if (e.key === KEYS.conversations && !state.busy) {
    state.conversations = loadConversations();
    render();
  }
});

if (!current()) state.currentId = null;
showSettings();
render();
ui.prompt.focus();
loadProps();
