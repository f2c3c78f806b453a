// The student page: upload a lecture, wait until it is ready, ask by voice or text, read and hear
// the answer, stop it, come back to it after a reload. Plain ES modules, no build step;
// configuration comes from config.json beside it.
import { guestCredentials } from "./cognito.js";
import { Connection } from "./connection.js";
import { EMPTY_FILE, PLAYBACK_BLOCKED, describeError, describeWarming } from "./errors.js";
import { AnswerPlayer } from "./player.js";
import { PushToTalk } from "./recorder.js";
import { presignUrl } from "./sigv4.js";

const $ = (selector) => document.querySelector(selector);
const state = {
  config: null,
  lecture: null, // the lecture being asked about (ready, with a session)
  upload: null, // a new lecture being uploaded or checked; the ready one stays usable meanwhile
  sessionId: null,
  lectures: [],
  turns: new Map(),
  credentials: null,
  pollTimer: null,
  restored: false,
};
const LOCAL_IDENTITY_KEY = "synapscribe.localIdentity";
const LAST_LECTURE_KEY = "synapscribe.lastLecture";
//: Shorter than this, a press is no question: "hold the button while you speak".
const MIN_QUESTION_SECONDS = 0.6;
//: A press released sooner than this is a click: recording goes on until the next click.
const CLICK_MS = 350;

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function notice(text, detail = "") {
  show($("#notice-text"), text);
  $("#notice-detail").textContent = detail;
  $("#notice").hidden = !text;
}

function limitsForWords() {
  const limits = state.config.limits;
  return { queryMaxSeconds: limits.queryMaxSeconds, lectureMaxMb: Math.round(limits.lectureMaxBytes / 1048576) };
}

function errorNotice(message, context = "") {
  const { text, detail } = describeError(message.code, message.message, context, limitsForWords());
  notice(text, detail);
}

// ------------------------------------------------------------------ citations

// The model marks where each passage comes from as "[from 01:00-02:00]" (contract: Answer.citations):
// shown as timestamps that play the lecture from there, never as text.
const MARKER = /\s*\[from ((?:\d{1,2}:)?\d{1,2}:\d{2})\s*(?:-|–|to)\s*((?:\d{1,2}:)?\d{1,2}:\d{2})\]/gi;

function withoutMarkers(text) {
  return text.replace(MARKER, "");
}

function clock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function renderCitations(turn, citations) {
  const box = turn.element.querySelector(".citations");
  box.replaceChildren();
  box.hidden = false;
  if (citations.length === 0) {
    box.textContent = "Not found in the lecture: this answer cites no part of it.";
    return;
  }
  const label = document.createElement("span");
  label.textContent = "From the lecture: ";
  box.append(label);
  for (const c of citations) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "cite";
    // The accessible name holds the visible text (WCAG 2.5.3, axe's label-content-name-mismatch).
    const range = `${clock(c.startSeconds)}–${clock(c.endSeconds)}`;
    const icon = document.createElement("span");
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = "▶ ";
    button.append(icon, range);
    button.setAttribute("aria-label", `Play the lecture ${range}`);
    button.dataset.start = c.startSeconds;
    button.dataset.end = c.endSeconds;
    button.addEventListener("click", () => playLecture(c));
    box.append(button);
  }
}

/** The lecturer's own recording from a citation's start to its end (a presigned GET of at most
 * five minutes, asked for again once it is about to expire). */
async function playLecture(citation) {
  state.player.stopAll();
  const lectureId = state.lecture?.lectureId;
  if (!lectureId) return;
  const cached = state.lectureAudio;
  if (!cached || cached.lectureId !== lectureId || Date.now() > cached.until) {
    const reply = await state.connection.request({ action: "getLectureAudio", lectureId }, "lectureAudio");
    if (reply.type === "error") return errorNotice(reply);
    state.lectureAudio = { lectureId, url: reply.url, until: Date.now() + Math.max(0, reply.expiresIn - 30) * 1000 };
  }
  const audio = $("#lecture-audio");
  if (audio.dataset.url !== state.lectureAudio.url) {
    audio.dataset.url = state.lectureAudio.url;
    audio.src = state.lectureAudio.url;
    audio.load(); // preload="none" until a citation is clicked: load it now
  }
  audio.hidden = false;
  audio.dataset.end = citation.endSeconds;
  const start = () => {
    audio.currentTime = citation.startSeconds;
    audio.play().catch((error) => error?.name === "NotAllowedError" && notice(PLAYBACK_BLOCKED));
  };
  if (audio.readyState >= 1) start();
  else audio.addEventListener("loadedmetadata", start, { once: true });
}

function wireLectureAudio() {
  const audio = $("#lecture-audio");
  const log = (globalThis.synapscribeLectureLog ??= []);
  audio.addEventListener("playing", () => log.push({ event: "play", at: audio.currentTime, end: Number(audio.dataset.end) }));
  audio.addEventListener("timeupdate", () => {
    if (audio.currentTime >= Number(audio.dataset.end)) audio.pause(); // the cited passage only
  });
}

function announce(text) {
  // One polite live region for answers: the streaming text is not live, so an answer is read once.
  $("#announcer").textContent = text;
}

// ------------------------------------------------------------------ connection

async function connectUrl() {
  const config = state.config;
  if (config.mode === "local") {
    let identity = localStorage.getItem(LOCAL_IDENTITY_KEY);
    if (!identity) {
      identity = "page-" + crypto.randomUUID().replaceAll("-", "").slice(0, 16);
      localStorage.setItem(LOCAL_IDENTITY_KEY, identity);
    }
    const url = new URL(config.websocketUrl);
    url.searchParams.set("identity", identity);
    return url.toString();
  }
  const soon = Date.now() + 5 * 60 * 1000;
  if (!state.credentials || state.credentials.expiration.getTime() < soon) {
    state.credentials = await guestCredentials(config);
  }
  return presignUrl(config.websocketUrl, state.credentials, config.region);
}

function onConnectionState(kind, text) {
  const labels = { connecting: "Connecting…", reconnecting: "Reconnecting…", open: "Connected", offline: "Offline" };
  $("#connection").textContent = labels[kind] ?? kind;
  $("#connection").dataset.state = kind;
  if (kind === "reconnecting" || kind === "offline") {
    notice(text || "Connection lost. Reconnecting…");
    for (const turn of state.turns.values()) {
      if (!turn.done) failTurn(turn, "The connection dropped before the answer arrived. Ask again.");
    }
  }
  if (kind === "open") {
    if (text === "reconnected") notice("");
    refreshLecture();
    listLectures();
  }
  updateControls();
}

// ------------------------------------------------------------------ lectures

function minutes(seconds) {
  return seconds ? `${(seconds / 60).toFixed(1)} min` : "";
}

function renderLecture() {
  const shown = state.upload ?? state.lecture;
  const status = $("#lecture-status");
  if (!shown) return show(status, "");
  status.dataset.status = shown.status;
  const words = {
    uploading: "Uploading…",
    pending: "Uploaded. Checking the recording…",
    transcribing: "Preparing the lecture (writing down what is said)…",
    ready: "Ready",
    rejected: "Rejected",
  };
  let text = words[shown.status] ?? shown.status;
  if (shown.status === "ready") {
    const how = shown.contextMode === "audio" ? "answers come from the recording itself" : "answers come from a written transcript";
    text += ` · ${how}`;
    if (shown.durationSeconds) text += ` · ${minutes(shown.durationSeconds)}`;
  }
  if (shown.status === "rejected") text += `: ${shown.reason ?? "the recording cannot be used."}`;
  show(status, text);
}

function refreshLecture() {
  const lecture = state.upload;
  if (!lecture || !state.connection.isOpen || ["ready", "rejected", "uploading"].includes(lecture.status)) return;
  state.connection.send({ action: "getLecture", lectureId: lecture.lectureId });
}

function onLecture(message) {
  if (state.upload && message.lectureId === state.upload.lectureId) {
    state.upload = { ...state.upload, ...message };
    renderLecture();
    if (message.status === "ready") {
      state.lecture = state.upload;
      state.upload = null;
      clearConversation();
      startSession();
    }
    if (message.status === "rejected") {
      const kept = state.lecture ? ` You can still ask about ${state.lecture.filename ?? "your earlier lecture"}.` : "";
      notice(`That recording cannot be used: ${message.reason ?? "it is not audio we can use."}${kept}`);
      state.upload = { ...state.upload, done: true };
    }
    if (["ready", "rejected"].includes(message.status)) {
      clearInterval(state.pollTimer);
      $("#upload-progress").hidden = true;
      listLectures();
    }
  }
  updateControls();
}

async function listLectures() {
  if (!state.connection?.isOpen) return;
  let reply;
  try {
    reply = await state.connection.request({ action: "listLectures" }, "lectures");
  } catch {
    return;
  }
  if (reply.type !== "lectures") return;
  state.lectures = reply.lectures;
  renderLectures();
  if (!state.restored) {
    state.restored = true;
    const last = localStorage.getItem(LAST_LECTURE_KEY);
    const ready = reply.lectures.filter((l) => l.status === "ready");
    const pick = ready.find((l) => l.lectureId === last) ?? ready[0];
    if (pick && !state.lecture) openLecture(pick, true);
  }
}

function renderLectures() {
  const list = $("#lectures");
  list.replaceChildren();
  for (const lecture of state.lectures) {
    const item = document.createElement("li");
    item.dataset.lectureId = lecture.lectureId;
    item.dataset.current = String(lecture.lectureId === state.lecture?.lectureId);
    const name = document.createElement("span");
    name.className = "name";
    const label = lecture.filename ?? lecture.lectureId;
    const words = { ready: "Ready", pending: "Checking", transcribing: "Preparing", rejected: "Rejected" };
    name.textContent = [label, words[lecture.status] ?? lecture.status, minutes(lecture.durationSeconds)].filter(Boolean).join(" · ");
    item.append(name);
    if (lecture.status === "ready" && lecture.lectureId !== state.lecture?.lectureId) {
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = "Open";
      open.setAttribute("aria-label", `Open ${label}`);
      open.addEventListener("click", () => openLecture(lecture, false));
      item.append(open);
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${label}`);
    remove.addEventListener("click", () => deleteLecture(lecture, label, remove));
    item.append(remove);
    list.append(item);
  }
  $("#lectures-box").hidden = state.lectures.length === 0;
}

async function openLecture(lecture, comingBack) {
  stopAnswers();
  state.lecture = lecture;
  state.sessionId = null;
  clearConversation();
  localStorage.setItem(LAST_LECTURE_KEY, lecture.lectureId);
  renderLecture();
  renderLectures();
  if (lecture.sessionId && (await reopenSession(lecture.sessionId))) {
    if (comingBack) notice(`Welcome back. Your conversation about ${lecture.filename ?? "your lecture"} is below.`);
  } else {
    await startSession();
  }
  updateControls();
}

async function reopenSession(sessionId) {
  let reply;
  try {
    reply = await state.connection.request({ action: "getSession", sessionId }, "sessionTurns");
  } catch {
    return false;
  }
  if (reply.type !== "sessionTurns") return false;
  state.sessionId = reply.sessionId;
  for (const past of reply.turns) {
    const turn = newTurn(past.voice ? "voice" : "text", past.voice ? "Voice question" : past.question, past.requestId);
    if (past.voice) showTranscript(turn, past.question);
    turn.done = true;
    turn.answer = past.answer;
    turn.element.querySelector(".answer").textContent = withoutMarkers(past.answer);
    // As the live answer showed them (kept with the turn; absent only for a turn kept before).
    if (past.citations) renderCitations(turn, past.citations);
    turn.element.dataset.state = "answered";
    turn.element.dataset.restored = "true";
  }
  return true;
}

async function deleteLecture(lecture, label, button) {
  // Two presses: the first asks to confirm (no blocking dialog), the second deletes.
  if (button.dataset.confirm !== "true") {
    button.dataset.confirm = "true";
    button.textContent = "Confirm delete";
    button.setAttribute("aria-label", `Confirm delete ${label} and its conversations`);
    return;
  }
  const reply = await state.connection.request({ action: "deleteLecture", lectureId: lecture.lectureId }, "lectureDeleted");
  if (reply.type === "error") return errorNotice(reply);
  if (state.lecture?.lectureId === lecture.lectureId) {
    stopAnswers();
    state.lecture = null;
    state.sessionId = null;
    clearConversation();
    renderLecture();
  }
  notice(`${label} was deleted.`);
  listLectures();
  updateControls();
}

async function startSession() {
  try {
    const reply = await state.connection.request(
      { action: "startSession", lectureId: state.lecture.lectureId },
      "session",
    );
    if (reply.type === "error") return errorNotice(reply);
    state.sessionId = reply.sessionId;
    localStorage.setItem(LAST_LECTURE_KEY, state.lecture.lectureId);
    updateControls();
  } catch (error) {
    notice(error.message);
  }
}

function postForm(url, fields, file, onProgress) {
  // XMLHttpRequest, not fetch: fetch reports no upload progress.
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onProgress(e.loaded / e.total));
    xhr.addEventListener("load", () =>
      xhr.status >= 200 && xhr.status < 300
        ? resolve()
        : reject(new Error(`The upload was refused (HTTP ${xhr.status}): ${xhr.responseText.match(/<Message>([^<]*)/)?.[1] ?? ""}`)),
    );
    xhr.addEventListener("error", () => reject(new Error("The upload failed: check your connection and try again.")));
    xhr.send(form);
  });
}

async function createUpload(kind, file, contentType) {
  const reply = await state.connection.request(
    { action: "createUpload", kind, filename: file.name || `${kind}.bin`, contentType, sizeBytes: file.size },
    "uploadUrl",
  );
  if (reply.type === "error") {
    const error = new Error(reply.message);
    error.contract = reply;
    throw error;
  }
  return reply;
}

async function uploadLecture(file) {
  notice("");
  if (file.size === 0) return notice(EMPTY_FILE);
  const progress = $("#upload-progress");
  progress.value = 0;
  progress.hidden = false;
  try {
    const upload = await createUpload("lecture", file, file.type || "application/octet-stream");
    state.upload = { lectureId: upload.uploadId, status: "uploading", filename: file.name };
    renderLecture();
    try {
      await postForm(upload.url, upload.fields, file, (share) => (progress.value = share));
    } catch (error) {
      state.upload = null;
      renderLecture();
      throw error;
    }
    progress.value = 1;
    state.upload.status = "pending";
    renderLecture();
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(refreshLecture, 2000);
  } catch (error) {
    if (error.contract) errorNotice(error.contract, "upload");
    else notice(error.message);
    progress.hidden = true;
  } finally {
    updateControls();
  }
}

// ------------------------------------------------------------------ questions

function clearConversation() {
  for (const turn of state.turns.values()) state.player.stop(turn.requestId);
  state.turns.clear();
  $("#conversation").replaceChildren();
}

function newTurn(kind, label, requestId = "q-" + crypto.randomUUID().replaceAll("-", "").slice(0, 12)) {
  const element = $("#turn-template").content.firstElementChild.cloneNode(true);
  element.dataset.requestId = requestId;
  element.dataset.kind = kind;
  element.querySelector(".question").textContent = label;
  $("#conversation").append(element);
  const turn = { requestId, element, done: false, answer: "", sessionId: state.sessionId, stopping: false, urls: [] };
  state.turns.set(requestId, turn);
  state.player.begin(requestId);
  element.querySelector(".replay").addEventListener("click", () => replay(turn));
  showTurn(turn);
  return turn;
}

/** Scroll the turn into view above the ask bar (sticky at the bottom on phones). */
function showTurn(turn) {
  const ask = $("#ask");
  turn.element.style.scrollMarginBottom = getComputedStyle(ask).position === "sticky" ? `${ask.offsetHeight + 8}px` : "";
  turn.element.scrollIntoView({ block: "end" });
}

function showTranscript(turn, text) {
  const line = turn.element.querySelector(".transcript");
  line.textContent = `Heard: ${text}`;
  line.hidden = false;
}

function replay(turn) {
  notice("");
  state.player.replay(turn.requestId, turn.urls);
  updateStopButton();
}

// ------------------------------------------------------------------ interrupt

/** Silence every answer now, and ask the server to stop those still being answered (the
 * contract's `cancel`): their final `answer` comes back marked `stopped`. */
function stopAnswers() {
  state.player.stopAll();
  $("#lecture-audio").pause();
  for (const turn of state.turns.values()) {
    if (turn.done || turn.stopping) continue;
    turn.stopping = true;
    turn.element.querySelector(".status").textContent = "Stopping…";
    try {
      state.connection.send({ action: "cancel", sessionId: turn.sessionId, requestId: turn.requestId });
    } catch {
      // Offline: the answer cannot reach the page anyway; the reconnect marks it failed.
    }
  }
  updateStopButton();
}

function updateStopButton() {
  const answering = [...state.turns.values()].some((t) => !t.done && !t.stopping);
  $("#stop").hidden = !(answering || state.player.busy);
}

function failTurn(turn, text, detail = "") {
  turn.done = true;
  turn.element.dataset.state = "error";
  const error = turn.element.querySelector(".error");
  error.textContent = text;
  error.title = detail;
  error.hidden = false;
  state.player.finish(turn.requestId);
  announce(text);
  updateStopButton();
}

function sendQuery(turn, input) {
  try {
    state.connection.send({
      action: "query",
      sessionId: state.sessionId,
      requestId: turn.requestId,
      voice: $("#speak").checked,
      ...input,
    });
    turn.element.dataset.state = "asked";
  } catch (error) {
    failTurn(turn, error.message);
  }
  updateStopButton();
}

function askText(event) {
  event.preventDefault();
  const text = $("#question").value.trim();
  if (!text || !state.sessionId) return;
  $("#question").value = "";
  sendQuery(newTurn("text", text), { text });
}

function base64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

async function askVoice(recording) {
  const limits = state.config.limits;
  const turn = newTurn("voice", `Voice question (${recording.seconds.toFixed(1)} s)`);
  const bytes = new Uint8Array(await recording.blob.arrayBuffer());
  const audio = base64(bytes);
  const voice = $("#speak").checked;
  // A browser sends a message as one frame: inline only when the whole message fits API
  // Gateway's frame limit (and the contract's inline limit); otherwise upload the clip.
  const frame = JSON.stringify({ action: "query", sessionId: state.sessionId, requestId: turn.requestId, voice, audio });
  if (bytes.length <= limits.inlineAudioMaxBytes && new TextEncoder().encode(frame).length <= limits.frameMaxBytes) {
    turn.element.dataset.transport = "inline";
    return sendQuery(turn, { audio });
  }
  turn.element.dataset.transport = "upload";
  try {
    const file = new File([recording.blob], `question.${recording.contentType.split("/")[1]}`, { type: recording.contentType });
    const upload = await createUpload("query", file, recording.contentType);
    await postForm(upload.url, upload.fields, file, () => {});
    sendQuery(turn, { queryKey: upload.key });
  } catch (error) {
    if (error.contract) {
      const { text, detail } = describeError(error.contract.code, error.contract.message, "question", limitsForWords());
      failTurn(turn, text, detail);
    } else failTurn(turn, error.message);
  }
}

// API Gateway closes a WebSocket idle for 10 minutes ("Quotas for configuring and running a
// WebSocket in API Gateway"), and a server's start-up may take longer: a turn waiting for one
// sends a cheap getLecture every few minutes until its answer or error arrives.
const KEEPALIVE_MS = 4 * 60 * 1000;

function keepAliveWhileWaiting(turn) {
  if (turn.keepAlive || !state.lecture) return;
  const lectureId = state.lecture.lectureId;
  turn.keepAlive = setInterval(() => {
    if (turn.done || !state.connection?.isOpen) return clearInterval(turn.keepAlive);
    state.connection.send({ action: "getLecture", lectureId });
  }, KEEPALIVE_MS);
}

function onAnswer(turn, message) {
  const part = (selector) => turn.element.querySelector(selector);
  turn.done = true;
  turn.answer = message.text;
  turn.urls = message.audio;
  part(".answer").textContent = withoutMarkers(message.text);
  if (message.citations) renderCitations(turn, message.citations);
  turn.element.dataset.state = message.stopped ? "stopped" : "answered";
  part(".status").textContent = message.stopped ? "Stopped." : "";
  part(".replay").hidden = message.audio.length === 0;
  state.player.finish(message.requestId);
  if (turn === [...state.turns.values()].at(-1)) showTurn(turn);
  announce(message.stopped ? `Stopped. ${withoutMarkers(message.text)}` : withoutMarkers(message.text));
}

function onStream(message) {
  const turn = state.turns.get(message.requestId);
  if (!turn) return message.type === "error" ? errorNotice(message, "question") : undefined;
  const part = (selector) => turn.element.querySelector(selector);
  switch (message.type) {
    case "warming":
      // No server was running: one is starting; the answer streams in when it is ready.
      part(".status").textContent = describeWarming(message.estimatedSeconds);
      turn.element.dataset.state = "warming";
      keepAliveWhileWaiting(turn);
      break;
    case "transcript":
      // A voice question's transcript comes whenever its transcription ends: before, between or
      // after the answer's pieces and speech (which do not wait for it). It has its own line above
      // the answer, so it is shown wherever in the stream it arrives.
      showTranscript(turn, message.text);
      break;
    case "answerDelta":
      turn.answer += message.text;
      part(".answer").textContent = withoutMarkers(turn.answer);
      if (turn.element.dataset.state === "warming") part(".status").textContent = "";
      turn.element.dataset.state = "streaming";
      break;
    case "audio": {
      if (turn.stopping) break;
      // The sentence list is for the page's own bookkeeping (hidden): the answer's text is shown once.
      const item = document.createElement("li");
      item.dataset.seq = message.seq;
      const list = part(".sentences");
      const after = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
      list.insertBefore(item, after ?? null);
      if ($("#speak").checked) state.player.add(message.requestId, message.seq, message.url, message.text);
      break;
    }
    case "answer":
      onAnswer(turn, message);
      break;
    case "error": {
      const { text, detail } = describeError(message.code, message.message, "question", limitsForWords());
      failTurn(turn, text, detail);
      break;
    }
  }
  updateStopButton();
}

function onPlayback(requestId, seq, itemState) {
  const turn = state.turns.get(requestId);
  const item = turn?.element.querySelector(`.sentences li[data-seq="${seq}"]`);
  if (item) item.dataset.state = itemState;
  updateStopButton();
}

function onMessage(message) {
  if (message.type === "lecture") return onLecture(message);
  if (["warming", "transcript", "answerDelta", "audio", "answer"].includes(message.type)) return onStream(message);
  if (message.type === "error") {
    if (message.requestId && state.turns.has(message.requestId)) return onStream(message);
    return errorNotice(message);
  }
}

// ------------------------------------------------------------------ controls

function updateControls() {
  const open = state.connection?.isOpen;
  const canAsk = open && Boolean(state.sessionId);
  $("#ask").hidden = !state.sessionId;
  for (const id of ["#question", "#send", "#talk"]) $(id).disabled = !canAsk;
  $("#file").disabled = !open;
}

function wireTalkButton() {
  const button = $("#talk");
  const status = $("#talk-status");
  const meter = $("#mic-level");
  // mode: null (idle), "starting", "hold" (sends on release) or "toggle" (sends on the next press)
  let mode = null;
  let pressedAt = 0;
  let started = false;
  const idle = () => {
    mode = null;
    started = false;
    button.dataset.state = "";
    button.textContent = "Hold to talk";
    button.setAttribute("aria-pressed", "false");
    meter.hidden = true;
  };
  const finish = async (auto = false) => {
    if (mode === null) return;
    idle();
    const recording = await state.recorder.stop();
    if (!recording) return;
    if (recording.seconds < MIN_QUESTION_SECONDS || recording.blob.size === 0) {
      status.textContent = "Too short to send: hold the button while you speak, or click once to start and again to send.";
      return;
    }
    const limit = state.config.limits.queryMaxSeconds;
    status.textContent = auto ? `Sent: a question stops at ${state.recorder.stopAfterSeconds} s, just under the ${limit} s limit.` : "";
    await askVoice(recording);
  };
  const begin = async () => {
    stopAnswers(); // barge-in: the answer being spoken stops as soon as the student talks
    notice("");
    pressedAt = performance.now();
    mode = "hold";
    status.textContent = "";
    try {
      await state.recorder.start({
        onAutoStop: () => finish(true),
        onTick: (left) => {
          status.textContent = left <= 5 ? `${Math.ceil(left)} s left: finish your question` : `Recording… ${Math.ceil(left)} s left`;
        },
        onLevel: (level) => (meter.value = level),
      });
    } catch (error) {
      idle();
      notice("The microphone is not available: allow microphone access for this page, or type your question.", error.message);
      return;
    }
    started = true;
    if (mode === null) return; // released and sent meanwhile
    button.dataset.state = "recording";
    button.setAttribute("aria-pressed", "true");
    meter.hidden = false;
    button.textContent = mode === "toggle" ? "Recording… click to send" : "Recording… release to send";
  };
  const press = () => {
    if (mode === "toggle") return finish();
    if (mode === null) begin();
  };
  const release = () => {
    if (mode !== "hold") return;
    // A click, or a release before the microphone was even on: keep recording until the next press.
    if (!started || performance.now() - pressedAt < CLICK_MS) {
      mode = "toggle";
      if (started) button.textContent = "Recording… click to send";
      return;
    }
    finish();
  };
  button.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    // The release comes back to the button even if the layout moved under the pointer (the
    // notice closing, the meter appearing) or a finger slid off it.
    button.setPointerCapture?.(event.pointerId);
    press();
  });
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  // Keyboard: Space held is push-to-talk, Enter toggles.
  button.addEventListener("keydown", (event) => {
    if (event.repeat || (event.key !== " " && event.key !== "Enter")) return;
    event.preventDefault();
    if (event.key === "Enter") {
      if (mode === null) {
        begin();
        mode = "toggle";
      } else finish();
      return;
    }
    press();
  });
  button.addEventListener("keyup", (event) => {
    if (event.key !== " ") return;
    event.preventDefault();
    if (mode === "hold") {
      if (!started) mode = "toggle";
      else finish();
    }
  });
  button.addEventListener("click", (event) => event.preventDefault());
}

async function main() {
  const response = await fetch("config.json", { cache: "no-store" });
  state.config = await response.json();
  const limits = state.config.limits;
  state.player = new AnswerPlayer({ onChange: onPlayback, onBlocked: () => notice(PLAYBACK_BLOCKED) });
  state.recorder = new PushToTalk({ audioBitsPerSecond: state.config.audioBitsPerSecond, maxSeconds: limits.queryMaxSeconds });
  $("#limits").textContent =
    `Lectures up to ${Math.round(limits.lectureMaxBytes / 1048576)} MB; questions up to ${limits.queryMaxSeconds} s.`;
  $("#file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) uploadLecture(file);
    event.target.value = "";
  });
  $("#ask-form").addEventListener("submit", askText);
  $("#stop").addEventListener("click", stopAnswers);
  $("#speak").addEventListener("change", (event) => {
    if (!event.target.checked) state.player.stopAll(); // speech off means silence now
    updateStopButton();
  });
  wireTalkButton();
  wireLectureAudio();
  state.connection = new Connection({ makeUrl: connectUrl, onMessage, onState: onConnectionState });
  window.synapscribePage = state; // for people debugging in the console, and the browser test
  await state.connection.open();
}

main().catch((error) => notice(`The page could not start: ${error.message}`));
