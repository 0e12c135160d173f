"""The local web page in a real browser: headless Chromium, driven over the DevTools
protocol, shows the alarm, and its Acknowledge and Mute buttons reach the monitor only
from the page's own address (with its token)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_webui import feed_alarm, make_hub
from tooling import require_tool

pytestmark = pytest.mark.slow


class Browser:
    """Headless Chromium with one page, over the DevTools protocol (a websocket)."""

    def __init__(self, tmp: Path) -> None:
        exe = require_tool("chromium", "apt-get install chromium", "/usr/bin/chromium")
        profile = tmp / "profile"
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [p for p in json.loads(r.read()) if p["type"] == "page"]
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None))
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self._id:
                assert "error" not in msg, msg
                return dict(msg.get("result") or {})

    def js(self, expr: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expr, awaitPromise=True,
                        returnByValue=True)
        return res["result"].get("value")

    def wait(self, expr: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expr)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expr!r} (page: "
                             f"{self.js('document.body.innerText')!r})")

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(autouse=True)
def _own_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SPASMWATCH_CONFIG", raising=False)


def test_alarm_view_acknowledge_and_mute_in_chromium(tmp_path: Path) -> None:
    browser = Browser(tmp_path)

    async def run() -> None:
        hub = make_hub()
        await hub.start()
        try:
            feed_alarm(hub)
            assert hub.sm.state == "alarm"
            # The page without its token (a bookmark of the bare address): the alarm
            # shows, but its buttons are refused and the alarm stays.
            await asyncio.to_thread(browser.call, "Page.navigate", url=hub.web.base_url + "/")
            await asyncio.to_thread(
                browser.wait, "document.getElementById('state').textContent === 'ALARM'")
            detail = await asyncio.to_thread(
                browser.js, "document.getElementById('detail').textContent")
            assert "3 spasm-like movements" in detail
            why = await asyncio.to_thread(browser.js, "document.getElementById('why').textContent")
            assert "peak 400 mg" in why
            await asyncio.to_thread(browser.js, "document.getElementById('ack').click()")
            answer = await asyncio.to_thread(
                browser.wait, "document.getElementById('answer').textContent")
            assert "token" in answer.lower()
            assert hub.sm.state == "alarm"
            # The address `run` prints (with the token): Acknowledge ends the alarm.
            await asyncio.to_thread(browser.call, "Page.navigate", url=hub.web.url)
            await asyncio.to_thread(
                browser.wait, "document.getElementById('state').textContent === 'ALARM'")
            await asyncio.to_thread(browser.js, "document.getElementById('ack').click()")
            await asyncio.to_thread(
                browser.wait, "document.getElementById('state').textContent === 'OK'")
            assert hub.sm.state == "ok"
            # Mute 30 min, then Unmute.
            await asyncio.to_thread(browser.js, "document.getElementById('mute').click()")
            await asyncio.to_thread(
                browser.wait, "document.getElementById('state').textContent === 'MUTED'")
            assert hub.sm.muted
            await asyncio.to_thread(browser.js, "document.getElementById('unmute').click()")
            await asyncio.to_thread(
                browser.wait, "document.getElementById('state').textContent === 'OK'")
            assert not hub.sm.muted
            sources = [r["source"] for r in hub.transitions.memory]
            assert sources.count("web") >= 3
        finally:
            await hub.stop()

    try:
        asyncio.run(run())
    finally:
        browser.close()
