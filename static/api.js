// One way to call the REST API from the page: JSON in, and either the answer or one line
// saying why not (the server's own `detail` where it gave one).

export async function callApi(url, method, body = null) {
  const init = { method };
  if (body !== null) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await fetch(url, init).catch(() => null);
  if (!response) return { ok: false, why: "webchat is unreachable" };
  const answer = await response.json().catch(() => ({}));
  if (response.ok) return { ok: true, answer };
  const detail = typeof answer.detail === "string" ? answer.detail : null;
  return { ok: false, why: detail || (answer.detail ? "check the fields" : `answered ${response.status}`) };
}
