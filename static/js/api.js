// api.js — the REST client both pages share: the signed-in token (kept in
// localStorage under a key per page), JSON requests, and errors as ApiError
// carrying the contract's `code`, `detail` and per-field messages.

/** An error answer of the API (or a network failure, with status 0). */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `request failed (${status})`);
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? "network" : "error");
    this.fields = (body && body.fields) || {};
    this.retryAfter = body && body.retry_after;
  }
}

/** A random key for `Idempotency-Key` (randomUUID needs a secure context). */
export function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The API as one signed-in user sees it. */
export class Api {
  /** `storageKey` names where the session is kept; `onSignedOut` runs on a 401. */
  constructor(storageKey, onSignedOut) {
    this.storageKey = storageKey;
    this.onSignedOut = onSignedOut;
    const saved = localStorage.getItem(storageKey);
    this.session = saved ? safeParse(saved) : null;
  }

  get token() {
    return this.session && this.session.token;
  }

  get user() {
    return this.session && this.session.user;
  }

  /** Signs in with the token endpoint and keeps the session. */
  async signIn(username, password) {
    const answer = await this.request("POST", "/api/auth/token/", { username, password }, { anonymous: true });
    this.session = answer;
    localStorage.setItem(this.storageKey, JSON.stringify(answer));
    return answer.user;
  }

  /** Forgets the session (the token stays valid on the server until it expires). */
  signOut() {
    this.session = null;
    localStorage.removeItem(this.storageKey);
  }

  /** One JSON request; resolves to the body (null for 204), rejects with ApiError. */
  async request(method, path, body, options = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.token && !options.anonymous) headers.Authorization = `Bearer ${this.token}`;
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, { detail: "The server cannot be reached." });
    }
    const text = await response.text();
    const parsed = text ? safeParse(text) : null;
    if (response.ok) return parsed;
    if (response.status === 401 && !options.anonymous) {
      this.signOut();
      if (this.onSignedOut) this.onSignedOut();
    }
    throw new ApiError(response.status, parsed);
  }

  get(path) {
    return this.request("GET", path);
  }

  /** Every item of a paginated list (following `next`, at most `maxPages` pages). */
  async listAll(path, maxPages = 20) {
    const items = [];
    let url = path + (path.includes("?") ? "&" : "?") + "page_size=100";
    for (let page = 0; url && page < maxPages; page += 1) {
      const answer = await this.get(url);
      items.push(...answer.results);
      url = answer.next ? relative(answer.next) : null;
    }
    return items;
  }
}

function relative(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    return null;
  }
}
