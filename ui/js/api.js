// The one way the dashboard talks to the server: the same /api/v1 JSON API scripts use.
// Errors arrive as problem documents; they are thrown as ApiError with the server's detail.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `request failed (${status})`);
    this.status = status;
    this.code = problem?.code || "unknown";
    this.field = problem?.field;
  }
}

let csrf = sessionStorage.getItem("nezuko.csrf") || "";

export function rememberCsrf(token) {
  csrf = token || "";
  sessionStorage.setItem("nezuko.csrf", csrf);
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-csrf-token"] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body = {}) => api("POST", path, body);
