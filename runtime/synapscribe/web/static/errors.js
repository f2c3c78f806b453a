// Every error code of the client contract (runtime/synapscribe/contract/messages.py, ErrorCode), in words a
// student understands. A unit test checks that the keys are exactly the contract's codes, so a code
// added on the server without a sentence here fails the build.
export const ERROR_TEXT = {
  bad_request:
    "The page sent something the server could not understand. Reload the page and try again.",
  unknown_action:
    "The page asked for something the server does not offer. Reload the page to get the latest version.",
  not_found:
    "That lecture or conversation is no longer there (it may have expired). Upload the lecture again.",
  too_large:
    "That is too big. Use a shorter recording or a smaller file, or ask a shorter question.",
  unsupported_media:
    "That file is not audio we can use. Upload the lecture as MP3, M4A, AAC, WAV, OGG, WebM or FLAC.",
  lecture_not_ready:
    "The lecture is still being prepared. Wait until it says Ready, then ask again.",
  busy: "Many students are asking right now. Wait a few seconds and ask again.",
  upstream_unavailable:
    "The answering service cannot be reached right now. Try again in a minute.",
  quota_exceeded:
    "You have reached a limit for guests (lectures, storage or questions). Delete an old lecture or wait a little, then try again.",
  rate_limited:
    "Too many messages in a short time. Wait a few seconds, then try again.",
  service_limit:
    "The service has reached today's limit for everyone, or is closed for now. Try again tomorrow.",
  internal:
    "Something went wrong on our side. Try again; if it keeps happening, tell your teacher.",
};

// What went wrong depends on what the student was doing: a spoken or typed question is not a
// lecture upload, so its errors never talk about uploading lectures, and a bad file never asks
// for a reload. Codes not listed for a context use ERROR_TEXT.
export const QUESTION_TEXT = {
  bad_request: "Your question could not be sent in a form the server accepts. Ask it again.",
  not_found:
    "This conversation has ended (it expires after a while without questions). Open your lecture from the list to start a new one.",
  too_large: "Your question is too long. Ask a shorter one (a spoken question can be up to {queryMaxSeconds} s).",
  unsupported_media:
    "Your recording could not be used (it was empty or not sound). Hold the button while you speak, then let go.",
  quota_exceeded: "You have asked many questions in a short time. Wait a minute, then ask again.",
};

export const UPLOAD_TEXT = {
  bad_request: "That file could not be sent. Choose the recording again.",
  not_found: "That lecture is no longer there (it may have expired or been deleted). Upload it again.",
  too_large: "That file is too big: a lecture can be up to {lectureMaxMb} MB. Choose a shorter or smaller recording.",
  unsupported_media:
    "That file is not a recording we can use. Choose an audio file: MP3, M4A, AAC, WAV, OGG, WebM or FLAC.",
};

/** The words when the browser would not play the spoken answer (autoplay blocked). */
export const PLAYBACK_BLOCKED =
  "Your browser blocked the spoken answer. Allow sound for this page (the sound or site settings icon in the address bar), then press “Replay answer”.";

/** The words for a file of 0 bytes, caught before anything is sent. */
export const EMPTY_FILE = "That file is empty (0 bytes). Choose the recording itself.";

/** The sentence for an `error` message in a context ("question", "upload" or none), with
 * `limits` filling in numbers; the server's own message stays available as detail. */
export function describeError(code, message, context = "", limits = {}) {
  const byContext = { question: QUESTION_TEXT, upload: UPLOAD_TEXT }[context] ?? {};
  let text = byContext[code] ?? ERROR_TEXT[code] ?? `Something went wrong (${code}). Try again.`;
  text = text.replace(/\{(\w+)\}/g, (_, name) => String(limits[name] ?? "?"));
  return { text, detail: message ?? "" };
}

/** The words for a `warming` message: no server was running, one is starting (contract/messages.py Warming). */
export function describeWarming(estimatedSeconds) {
  return `Starting a server, about ${estimatedSeconds} s. Your answer follows when it is ready.`;
}
