// Who is signed in. The token lives in memory only: never in storage, a cookie or the address bar.
// A token handed over as /#token=... is taken and the fragment removed at once.

import { call } from "./api.js";

export const kRoles = ["viewer", "member", "operator", "admin", "system"];

// The token handed over in the address, removed from it (and from the history entry).
export function takeTokenFromAddress() {
  const hash = window.location.hash;
  if (!hash.startsWith("#token=")) return "";
  // Out of the address bar and the history first, whatever the token turns out to be.
  window.history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
  const raw = hash.slice("#token=".length).split("&")[0];
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // not percent-encoded: the API says what is wrong with it
  }
}

// The token's expiry in epoch ms (0 when it has none the console can read): only to sign out on
// time; the API verifies the token on every request.
export function expiryOf(token) {
  try {
    const payload = token.split(".")[1];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((payload.length + 3) % 4));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

// {subject, tenant, role} as the API reads the token.
export async function whoami() {
  return call("/v1/whoami");
}

// What a role may do, as docs/api.md's matrix says; the console offers only these (the API checks
// every call anyway). A member manages the jobs it submitted.
export function may(session, action, job) {
  const rank = kRoles.indexOf(session.role);
  switch (action) {
    case "submit":
    case "clone":
      return rank >= 1;
    case "manage-job":
      return rank >= 2 || (rank === 1 && job && job.submitted_by === session.subject);
    case "manage-schedules":
    case "replay-dead-letters":
      return rank >= 2;
    case "audit":
    case "manage-tenant":
      return rank >= 3;
    default:
      return false;
  }
}
