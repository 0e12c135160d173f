"""A small local web page (status, acknowledge, mute) and the API the CLI talks to.

Standard library only: ``http.server`` in a thread, on loopback by default. Every action
runs on the hub's asyncio loop (``run_coroutine_threadsafe``), so the state machine and
its SQLite connection are only ever touched from one thread.

API (JSON): ``GET /api/status``; ``POST /api/ack``; ``POST /api/mute`` with
``{"minutes": N}`` (0 unmutes). Because this page can silence a baby alarm, POSTs must
carry the header ``X-Spasmwatch: 1`` (a web page on another site cannot send a custom
header to us without a CORS preflight, which is refused), and the ``Host`` header must
name this server (no DNS rebinding). They must also carry the token
(``X-Spasmwatch-Token``; kept beside the settings, ``host/pairing.py`` ``web_token``),
so another local user or program cannot acknowledge or mute an alarm: the page's URL
(``url``, printed by ``run``) carries it as ``?token=...`` and the page sends it on.
Loopback only by default; a LAN address is refused without a token (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol


class AlertHub(Protocol):
    """What the page needs of the alert hub (``delivery.AlertHub``): its state, and the
    parent's commands. A protocol, so the page does not import the hub that starts it."""

    def snapshot(self) -> dict[str, Any]: ...

    def command(self, action: str, minutes: float | None, source: str) -> str: ...

log = logging.getLogger("spasmwatch.webui")

HEADER = "X-Spasmwatch"
TOKEN_HEADER = "X-Spasmwatch-Token"
_CALL_TIMEOUT_S = 5.0
_MAX_BODY = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spasmwatch</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.5em;max-width:40em;background:#111;color:#eee}
 #state{font-size:2.5em;font-weight:bold;padding:.3em .5em;border-radius:.3em}
 .ok{background:#1b5e20}.warning{background:#f9a825;color:#000}.alarm{background:#b71c1c}
 .fault{background:#e65100}.muted{background:#455a64}
 button{font-size:1.3em;margin:.4em .4em 0 0;padding:.5em 1em}
 pre{white-space:pre-wrap;background:#222;padding:.6em}
 small{color:#aaa}
</style></head><body>
<div id="state" class="ok">…</div>
<p id="detail"></p>
<pre id="why"></pre>
<button id="ack">Acknowledge</button>
<button id="mute">Mute 30 min</button>
<button id="unmute">Unmute</button>
<p id="answer"></p>
<p><small>spasmwatch is a monitoring aid, not a medical device: it describes movements,
it does not diagnose. If you are worried, film an episode and see a doctor urgently.
</small></p>
<script>
async function post(path, body){
  const token = new URLSearchParams(location.search).get("token") || "";
  const r = await fetch(path, {method:"POST", headers:{"X-Spasmwatch":"1",
    "X-Spasmwatch-Token": token, "Content-Type":"application/json"},
    body: JSON.stringify(body||{})});
  const j = await r.json(); document.getElementById("answer").textContent =
    j.answer || j.error || ""; refresh();
}
function line(s){ return s ? s : ""; }
async function refresh(){
  try {
    const s = await (await fetch("/api/status")).json();
    const el = document.getElementById("state");
    el.textContent = s.state.toUpperCase(); el.className = s.state;
    let d = [];
    if (s.alarm && !s.alarm.acknowledged) d.push(s.alarm.message);
    for (const f of s.faults) d.push("Problem: " + f.message);
    if (s.warning) d.push("Warning: " + s.warning.message);
    if (s.muted_until) d.push("Muted until " + new Date(s.muted_until*1000).toLocaleTimeString());
    d.push("Sensor link: " + (s.sensor_link ? "ok" : "NO DATA") +
      (s.battery_mv ? " · battery " + s.battery_mv + " mV" : "") +
      " · movements in the last hour: " + s.events_last_hour);
    document.getElementById("detail").textContent = d.join("  ·  ");
    document.getElementById("why").textContent = s.alarm ? line(s.alarm.why_text) : "";
  } catch (e) {
    document.getElementById("state").textContent = "NO CONNECTION TO MONITOR";
    document.getElementById("state").className = "fault";
  }
}
document.getElementById("ack").onclick = () => post("/api/ack");
document.getElementById("mute").onclick = () => post("/api/mute", {minutes: 30});
document.getElementById("unmute").onclick = () => post("/api/mute", {minutes: 0});
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""


class WebUI:
    """Serve the page and API for ``hub`` on ``host:port`` (port 0 = any free port)."""

    def __init__(self, hub: AlertHub, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        # None: the token kept beside the settings (made on first use); "" = none, which
        # only a loopback address may use.
        self.token = token
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The page's address, with the token that acknowledge/mute need."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        if self.token is None:
            from spasmwatch.host.pairing import settings_folder, web_token

            src = Path(str(getattr(getattr(self.hub, "settings", None), "source", "")))
            self.token = web_token(src.parent if src.is_file() else settings_folder())
        if not self.token and not _loopback(self.host):
            raise ValueError(f"the web page on {self.host} (not loopback) needs a token: "
                             "anyone on the network could silence an alarm")
        if not _loopback(self.host):
            log.warning("web page on %s: reachable from the network; acknowledge and mute "
                        "need the token in %s", self.host, self.url)
        self._loop = asyncio.get_running_loop()
        handler = type("Handler", (_Handler,), {"ui": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="spasmwatch-webui", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        self._server = None

    def allowed_hosts(self) -> set[str]:
        names = {self.host, "127.0.0.1", "localhost", "[::1]"}
        return {f"{n}:{self.port}" for n in names} | names

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the hub's loop and return its result (from the HTTP thread)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_CALL_TIMEOUT_S)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def status_with_text(hub: AlertHub) -> dict[str, Any]:
    snap = hub.snapshot()
    if snap.get("alarm"):
        from spasmwatch.host.alerts.alarm_state import Notice

        a = snap["alarm"]
        snap["alarm"]["why_text"] = Notice(a["t"] or 0.0, "alarm", a["kind"] or "", "",
                                           a["message"], a["why"]).body()
    return snap


class _Handler(BaseHTTPRequestHandler):
    ui: WebUI
    server_version = "spasmwatch"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # the daemon logs actions itself; no per-request noise

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: dict[str, Any]) -> None:
        self._send(code, json.dumps(obj, default=str).encode(), "application/json")

    def _host_ok(self) -> bool:
        if self.headers.get("Host", "") in self.ui.allowed_hosts():
            return True
        self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header"})
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if not self._host_ok():
            return
        path = self.path.split("?", 1)[0]  # the page's own URL carries ?token=...
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/status":
            self._json(HTTPStatus.OK, self.ui.call(status_with_text, self.ui.hub))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        if not self._host_ok():
            return
        if self.headers.get(HEADER) != "1":
            self._json(HTTPStatus.FORBIDDEN, {"error": f"missing header {HEADER}: 1"})
            return
        token = self.ui.token or ""
        if token and not hmac.compare_digest(
                self.headers.get(TOKEN_HEADER, "").encode(), token.encode()):
            self._json(HTTPStatus.FORBIDDEN, {"error": f"missing or wrong {TOKEN_HEADER}: "
                                              "use the address `spasmwatch run` printed"})
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
            if n > _MAX_BODY:
                raise ValueError("request body too large")
            raw = self.rfile.read(n) if n else b""
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if self.path == "/api/ack":
                answer = self.ui.call(self.ui.hub.command, "ack", None, "web")
            elif self.path == "/api/mute":
                minutes = body.get("minutes", 30)
                if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                    raise ValueError(f"minutes must be a number, not {minutes!r}")
                action = "unmute" if minutes == 0 else "mute"
                answer = self.ui.call(self.ui.hub.command, action, float(minutes), "web")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {self.path}"})
                return
        except (ValueError, json.JSONDecodeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"answer": answer, "status": self.ui.call(
            self.ui.hub.snapshot)})
