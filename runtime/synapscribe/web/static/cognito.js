// Guest credentials with Cognito's basic (classic) flow: GetId, GetOpenIdToken, then STS
// AssumeRoleWithWebIdentity with the pool's guest role. The enhanced flow
// (GetCredentialsForIdentity) scopes guests down with Cognito's managed session policy, which has
// no execute-api: a `$connect` signed with those credentials is denied (issue 11, section 1).
// All three calls are unsigned, as AWS documents them; the identity id is kept in localStorage so a
// returning student keeps their lectures.

// Kept where the AWS SDK for JavaScript's CognitoIdentityCredentials keeps it (one key per pool), so
// a returning student, on this page or one built with the SDK, is the same guest with the same
// lectures. The page's earlier key is read once and moved.
const LEGACY_IDENTITY_KEY = "synapscribe.identityId";

export function identityKey(identityPoolId) {
  return `aws.cognito.identity-id.${identityPoolId}`;
}

async function cognitoCall(endpoint, target, body, fetchImpl) {
  const response = await fetchImpl(endpoint, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityService.${target}`,
    },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(data.__type ?? response.status).split("#").pop();
    const error = new Error(`Cognito ${target}: ${type}: ${data.message ?? data.Message ?? ""}`.trim());
    error.type = type;
    throw error;
  }
  return data;
}

function xmlValue(xml, tag) {
  const match = xml.match(new RegExp(`<${tag}>([^<]*)</${tag}>`));
  return match ? match[1].replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">") : null;
}

async function identityId(config, storage, fetchImpl, fresh) {
  const key = identityKey(config.identityPoolId);
  const stored = fresh ? null : storage?.getItem(key) ?? storage?.getItem(LEGACY_IDENTITY_KEY);
  if (stored) {
    storage?.setItem(key, stored);
    return stored;
  }
  const data = await cognitoCall(config.cognitoEndpoint, "GetId", { IdentityPoolId: config.identityPoolId }, fetchImpl);
  storage?.setItem(key, data.IdentityId);
  return data.IdentityId;
}

/** {identityId, accessKeyId, secretAccessKey, sessionToken, expiration: Date} for a guest. */
export async function guestCredentials(config, { storage = globalThis.localStorage, fetchImpl = globalThis.fetch } = {}) {
  const endpoints = {
    cognitoEndpoint: config.cognitoEndpoint ?? `https://cognito-identity.${config.region}.amazonaws.com/`,
    stsEndpoint: config.stsEndpoint ?? `https://sts.${config.region}.amazonaws.com/`,
    identityPoolId: config.identityPoolId,
  };
  let id = await identityId(endpoints, storage, fetchImpl, false);
  let token;
  try {
    token = (await cognitoCall(endpoints.cognitoEndpoint, "GetOpenIdToken", { IdentityId: id }, fetchImpl)).Token;
  } catch (error) {
    // A stored identity from another pool, or one deleted since: start a new one.
    if (!["ResourceNotFoundException", "NotAuthorizedException"].includes(error.type)) throw error;
    id = await identityId(endpoints, storage, fetchImpl, true);
    token = (await cognitoCall(endpoints.cognitoEndpoint, "GetOpenIdToken", { IdentityId: id }, fetchImpl)).Token;
  }
  const form = new URLSearchParams({
    Action: "AssumeRoleWithWebIdentity",
    Version: "2011-06-15",
    RoleArn: config.guestRoleArn,
    RoleSessionName: "synapscribe-page",
    WebIdentityToken: token,
  });
  const response = await fetchImpl(endpoints.stsEndpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  const xml = await response.text();
  if (!response.ok) throw new Error(`STS AssumeRoleWithWebIdentity: ${xmlValue(xml, "Code")}: ${xmlValue(xml, "Message")}`);
  return {
    identityId: id,
    accessKeyId: xmlValue(xml, "AccessKeyId"),
    secretAccessKey: xmlValue(xml, "SecretAccessKey"),
    sessionToken: xmlValue(xml, "SessionToken"),
    expiration: new Date(xmlValue(xml, "Expiration")),
  };
}
