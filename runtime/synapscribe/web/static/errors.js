// Every error code of the client contract (runtime/synapscribe/contract.py, ErrorCode), in words a
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
  internal:
    "Something went wrong on our side. Try again; if it keeps happening, tell your teacher.",
};

/** The sentence for an `error` message; the server's own message stays available as detail. */
export function describeError(code, message) {
  const text = ERROR_TEXT[code] ?? `Something went wrong (${code}). Try again.`;
  return { text, detail: message ?? "" };
}

/** The words for a `warming` message: no server was running, one is starting (contract.py Warming). */
export function describeWarming(estimatedSeconds) {
  return `Starting a server, about ${estimatedSeconds} s. Your answer follows when it is ready.`;
}
