// The student page: upload a lecture, wait until it is ready, ask by voice or text, read and hear
// the answer. Plain ES modules, no build step; configuration comes from config.json beside it.
import { guestCredentials } from "./cognito.js";
import { Connection } from "./connection.js";
import { describeError, describeWarming } from "./errors.js";
import { AnswerPlayer } from "./player.js";
import { PushToTalk } from "./recorder.js";
import { presignUrl } from "./sigv4.js";

const $ = (selector) => document.querySelector(selector);
const state = { config: null, lecture: null, sessionId: null, turns: new Map(), credentials: null, pollTimer: null };
const LOCAL_IDENTITY_KEY = "synapscribe.localIdentity";

function show(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function notice(text, detail = "") {
  show($("#notice-text"), text);
  $("#notice-detail").textContent = detail;
  $("#notice").hidden = !text;
}

function errorNotice(message) {
  const { text, detail } = describeError(message.code, message.message);
  notice(text, detail);
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
  }
  updateControls();
}

// ------------------------------------------------------------------ lecture

function renderLecture() {
  const lecture = state.lecture;
  const status = $("#lecture-status");
  if (!lecture) return show(status, "");
  status.dataset.status = lecture.status;
  const words = {
    uploading: "Uploading…",
    pending: "Uploaded. Checking the recording…",
    transcribing: "Preparing the lecture (transcribing)…",
    ready: "Ready",
    rejected: "Rejected",
  };
  let text = words[lecture.status] ?? lecture.status;
  if (lecture.status === "ready") {
    const minutes = lecture.durationSeconds ? ` · ${(lecture.durationSeconds / 60).toFixed(1)} min` : "";
    const mode = lecture.contextMode === "audio" ? "the model listens to the audio" : "the model reads a transcript";
    text += ` · mode: ${lecture.contextMode} (${mode})${minutes}`;
  }
  if (lecture.status === "rejected") text += `: ${lecture.reason ?? "the recording cannot be used."}`;
  show(status, text);
  $("#lecture-mode").textContent = lecture.contextMode ?? "";
}

function refreshLecture() {
  const lecture = state.lecture;
  if (!lecture || !state.connection.isOpen || ["ready", "rejected", "uploading"].includes(lecture.status)) return;
  state.connection.send({ action: "getLecture", lectureId: lecture.lectureId });
}

function onLecture(message) {
  if (!state.lecture || message.lectureId !== state.lecture.lectureId) return;
  state.lecture = { ...state.lecture, ...message };
  renderLecture();
  if (message.status === "ready" && !state.sessionId) startSession();
  if (["ready", "rejected"].includes(message.status)) {
    clearInterval(state.pollTimer);
    $("#upload-progress").hidden = true;
  }
}

async function startSession() {
  try {
    const reply = await state.connection.request(
      { action: "startSession", lectureId: state.lecture.lectureId },
      "session",
    );
    if (reply.type === "error") return errorNotice(reply);
    state.sessionId = reply.sessionId;
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
  const progress = $("#upload-progress");
  progress.value = 0;
  progress.hidden = false;
  try {
    const upload = await createUpload("lecture", file, file.type || "application/octet-stream");
    const previous = { lecture: state.lecture, sessionId: state.sessionId };
    state.lecture = { lectureId: upload.uploadId, status: "uploading", filename: file.name };
    state.sessionId = null;
    renderLecture();
    try {
      await postForm(upload.url, upload.fields, file, (share) => (progress.value = share));
    } catch (error) {
      Object.assign(state, previous);
      renderLecture();
      throw error;
    }
    progress.value = 1;
    state.lecture.status = "pending";
    renderLecture();
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(refreshLecture, 2000);
  } catch (error) {
    if (error.contract) errorNotice(error.contract);
    else notice(error.message);
    progress.hidden = true;
  } finally {
    updateControls();
  }
}

// ------------------------------------------------------------------ questions

function newTurn(kind, label) {
  const requestId = "q-" + crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  const element = $("#turn-template").content.firstElementChild.cloneNode(true);
  element.dataset.requestId = requestId;
  element.dataset.kind = kind;
  element.querySelector(".question").textContent = label;
  $("#conversation").append(element);
  const turn = { requestId, element, done: false, answer: "", sessionId: state.sessionId, stopping: false };
  state.turns.set(requestId, turn);
  state.player.begin(requestId);
  element.scrollIntoView({ block: "end" });
  return turn;
}

// ------------------------------------------------------------------ interrupt

/** Silence every answer now, and ask the server to stop those still being answered (the
 * contract's `cancel`): their final `answer` comes back marked `stopped`. */
function stopAnswers() {
  for (const turn of state.turns.values()) {
    state.player.stop(turn.requestId);
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
  // A browser sends a message as one frame: inline only when the whole message fits API
  // Gateway's frame limit (and the contract's inline limit); otherwise upload the clip.
  const frame = JSON.stringify({ action: "query", sessionId: state.sessionId, requestId: turn.requestId, voice: true, audio });
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
      const { text, detail } = describeError(error.contract.code, error.contract.message);
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

function onStream(message) {
  const turn = state.turns.get(message.requestId);
  if (!turn) return message.type === "error" ? errorNotice(message) : undefined;
  const part = (selector) => turn.element.querySelector(selector);
  switch (message.type) {
    case "warming":
      // No server was running: one is starting; the answer streams in when it is ready.
      part(".answer").textContent = describeWarming(message.estimatedSeconds);
      turn.element.dataset.state = "warming";
      keepAliveWhileWaiting(turn);
      break;
    case "transcript":
      // A voice question's transcript comes whenever its transcription ends: before, between or
      // after the answer's pieces and speech (which do not wait for it). It has its own line above
      // the answer, so it is shown wherever in the stream it arrives.
      part(".transcript").textContent = `Heard: ${message.text}`;
      part(".transcript").hidden = false;
      break;
    case "answerDelta":
      turn.answer += message.text;
      part(".answer").textContent = turn.answer;
      turn.element.dataset.state = "streaming";
      break;
    case "audio": {
      if (turn.stopping) break;
      const item = document.createElement("li");
      item.dataset.seq = message.seq;
      item.textContent = message.text;
      const list = part(".sentences");
      const after = [...list.children].find((li) => Number(li.dataset.seq) > message.seq);
      list.insertBefore(item, after ?? null);
      state.player.add(message.requestId, message.seq, message.url, message.text);
      break;
    }
    case "answer":
      turn.done = true;
      turn.answer = message.text;
      part(".answer").textContent = message.text;
      turn.element.dataset.state = message.stopped ? "stopped" : "answered";
      part(".status").textContent = message.stopped ? "Stopped." : "";
      state.player.finish(message.requestId);
      break;
    case "error": {
      const { text, detail } = describeError(message.code, message.message);
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
  let stopping = null;
  const stop = async () => {
    if (!state.recorder.recording || stopping) return;
    stopping = state.recorder.stop();
    const recording = await stopping;
    stopping = null;
    button.dataset.state = "";
    button.textContent = "Hold to talk";
    if (recording && recording.blob.size > 0) await askVoice(recording);
  };
  button.addEventListener("pointerdown", async (event) => {
    event.preventDefault();
    stopAnswers(); // barge-in: the answer being spoken stops as soon as the student talks
    try {
      await state.recorder.start(stop);
      button.dataset.state = "recording";
      button.textContent = "Recording… release to send";
    } catch (error) {
      notice("The microphone is not available: allow microphone access for this page, or type your question.", error.message);
    }
  });
  for (const type of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(type, stop);
}

async function main() {
  const response = await fetch("config.json", { cache: "no-store" });
  state.config = await response.json();
  const limits = state.config.limits;
  state.player = new AnswerPlayer({ onChange: onPlayback });
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
  state.connection = new Connection({ makeUrl: connectUrl, onMessage, onState: onConnectionState });
  window.synapscribePage = state; // for people debugging in the console, and the browser test
  await state.connection.open();
}

main().catch((error) => notice(`The page could not start: ${error.message}`));
