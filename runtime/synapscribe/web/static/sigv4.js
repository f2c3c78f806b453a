// A SigV4 query-string presign over WebCrypto, for the WebSocket API's IAM-authorized `$connect`.
// Browsers cannot set headers on a WebSocket upgrade, so the signature travels in the URL
// (X-Amz-* query parameters), which API Gateway accepts like a signed header. Written here instead
// of bundling the AWS SDK: one GET with one signed header needs ~80 lines, and the page then loads
// nothing it did not ship. tests/unit/web/test_page.py checks it against botocore's signer.

const encoder = new TextEncoder();
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, text) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(text)));
}

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone). */
export function uriEncode(value) {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

/** 20261202T040000Z */
export function amzDate(date) {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

export async function signingKey(secret, day, region, service) {
  let key = await hmac(encoder.encode("AWS4" + secret), day);
  for (const part of [region, service, "aws4_request"]) key = await hmac(key, part);
  return key;
}

/**
 * `url` (wss://… or https://…) signed for a GET with `credentials`
 * ({accessKeyId, secretAccessKey, sessionToken?}); valid for `expires` seconds from `date`.
 */
export async function presignUrl(url, credentials, region, { service = "execute-api", date = new Date(), expires = 300 } = {}) {
  const u = new URL(url);
  const datetime = amzDate(date);
  const scope = `${datetime.slice(0, 8)}/${region}/${service}/aws4_request`;
  const params = [...u.searchParams.entries()];
  params.push(
    ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"],
    ["X-Amz-Credential", `${credentials.accessKeyId}/${scope}`],
    ["X-Amz-Date", datetime],
    ["X-Amz-Expires", String(expires)],
    ["X-Amz-SignedHeaders", "host"],
  );
  if (credentials.sessionToken) params.push(["X-Amz-Security-Token", credentials.sessionToken]);
  const query = params
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  // Non-S3 services sign the path encoded once more (u.pathname is already percent-encoded).
  const path = (u.pathname || "/").split("/").map(uriEncode).join("/");
  const canonical = ["GET", path, query, `host:${u.host}\n`, "host", EMPTY_SHA256].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", datetime, scope, await sha256Hex(canonical)].join("\n");
  const key = await signingKey(credentials.secretAccessKey, datetime.slice(0, 8), region, service);
  const signature = hex(await hmac(key, toSign));
  return `${u.protocol}//${u.host}${u.pathname}?${query}&X-Amz-Signature=${signature}`;
}
