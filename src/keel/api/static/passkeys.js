// Keel passkey pages: sign-in (/auth/sign-in) and enrolment (/auth/enroll).
// Plain JavaScript, no dependencies. The server sends WebAuthn options as JSON (binary values in
// unpadded base64url); this file turns them into what navigator.credentials expects and the
// browser's answer back into JSON. Every request is same-origin JSON, which the server requires.
"use strict";

const b64urlToBytes = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
};

const bytesToB64url = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const descriptors = (list) => (list || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) }));

function creationOptions(json) {
  return {
    ...json,
    challenge: b64urlToBytes(json.challenge),
    user: { ...json.user, id: b64urlToBytes(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

function requestOptions(json) {
  return { ...json, challenge: b64urlToBytes(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

function registrationJSON(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    response: {
      clientDataJSON: bytesToB64url(response.clientDataJSON),
      attestationObject: bytesToB64url(response.attestationObject),
      transports: typeof response.getTransports === "function" ? response.getTransports() : [],
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

function assertionJSON(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    response: {
      clientDataJSON: bytesToB64url(response.clientDataJSON),
      authenticatorData: bytesToB64url(response.authenticatorData),
      signature: bytesToB64url(response.signature),
      userHandle: response.userHandle ? bytesToB64url(response.userHandle) : undefined,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

async function postJSON(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body || {}),
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.detail || `${answer.status} ${answer.statusText}`);
  return data;
}

function say(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = kind || "";
}

function supported() {
  if (window.PublicKeyCredential && navigator.credentials) return true;
  say("This browser does not support passkeys.", "error");
  return false;
}

function safeNext() {
  const next = new URLSearchParams(location.search).get("next");
  // Same-site paths only: "/dashboard", never "//evil.example" or "https://...".
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : null;
}

async function showMe() {
  const answer = await fetch("/auth/me", { credentials: "same-origin", headers: { Accept: "application/json" } });
  const out = document.getElementById("me");
  const signOut = document.getElementById("sign-out");
  if (answer.ok) {
    const me = await answer.json();
    out.textContent = `Signed in as ${me.name} (${me.tenant_id}).`;
    if (signOut) signOut.hidden = false;
  } else {
    out.textContent = "";
    if (signOut) signOut.hidden = true;
  }
}

async function signIn() {
  if (!supported()) return;
  try {
    say("Waiting for your passkey…");
    const options = await postJSON("/auth/passkeys/authenticate/options", {});
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    const user = await postJSON("/auth/passkeys/authenticate/verify", { credential: assertionJSON(credential) });
    say(`Welcome, ${user.name}.`, "ok");
    const next = safeNext();
    if (next) location.assign(next);
    else await showMe();
  } catch (error) {
    say(error.name === "NotAllowedError" ? "Cancelled, or no passkey for this site." : `Sign-in failed: ${error.message}`, "error");
  }
}

async function signOut() {
  try {
    await postJSON("/auth/sign-out", {});
    say("Signed out.", "ok");
  } catch (error) {
    say(`Sign-out failed: ${error.message}`, "error");
  }
  await showMe();
}

async function enroll() {
  if (!supported()) return;
  const token = window.keelEnrollmentToken;
  if (!token) {
    say("This enrolment link has no token: ask an administrator for a new link.", "error");
    return;
  }
  try {
    say("Creating your passkey…");
    const options = await postJSON("/auth/passkeys/register/options", { token });
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const name = document.getElementById("passkey-name").value.trim();
    await postJSON("/auth/passkeys/register/verify", { token, name, credential: registrationJSON(credential) });
    window.keelEnrollmentToken = null;
    document.getElementById("enroll").hidden = true;
    say("Your passkey is ready. You can now sign in with it.", "ok");
    document.getElementById("next").hidden = false;
  } catch (error) {
    say(error.name === "NotAllowedError" ? "Cancelled." : `Enrolment failed: ${error.message}`, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "enroll") {
    // Keep the token in memory only, and out of the address bar, history and later Referer headers.
    window.keelEnrollmentToken = new URLSearchParams(location.search).get("token");
    history.replaceState(null, "", location.pathname);
    document.getElementById("enroll").addEventListener("click", enroll);
  } else {
    document.getElementById("sign-in").addEventListener("click", signIn);
    document.getElementById("sign-out").addEventListener("click", signOut);
    showMe();
  }
});
