#!/usr/bin/env python3
"""Check spasmwatch against a real Home Assistant (not run in CI: installing takes minutes).

What it does, each step printed as it goes:

1. installs Home Assistant (``homeassistant`` from PyPI) in a venv of its own, made with
   ``--python`` (3.13 or newer), pinned by the ``package_constraints.txt`` shipped inside
   the Home Assistant wheel (without it pip backtracks for a long time), plus the
   requirements of the integrations used here so Home Assistant runs with ``--skip-pip``;
2. starts mosquitto on a free loopback port and Home Assistant on another, onboards a
   user through the REST API, and sets up the MQTT integration through its config flow;
3. runs the monitor (``spasmwatch run --simulate SCENARIO`` from the Python running this
   script, i.e. the repo's venv) with MQTT and the web page on loopback;
4. checks, through Home Assistant's REST API: the 8 entities exist under one device; the
   state follows the monitor; an alarm shows in the state, alarm-active and event
   entities (event attributes under 16 kB); the Acknowledge and Mute buttons reach the
   daemon (its web API shows the alarm acknowledged, then muted) and come back to Home
   Assistant as state; ``spasmwatch alert test``
   beside the daemon leaves it available (no Last Will, no contradicting state) and its
   test event arrives; during a broker outage the sensor falls silent (the virtual
   board is stopped: a fault) and comes back (cleared), and after the broker's restart
   (its retained messages lost) Home Assistant shows the current state and holds a
   summary event of the missed notices; a frozen daemon (SIGSTOP) is dropped through
   its Last Will and comes back without a stale ``delivery_failed_mqtt``; Home
   Assistant's log holds no MQTT error (other than the lost connection during the
   outage) and no "exceed maximum size" attribute warning.

Usage (from the repo's venv)::

    python tools/ha_check.py [--python /path/to/python3.13] [--dir ~/.cache/spasmwatch-ha]

Exit 0 when every check passed; the last line says which failed otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HA_VERSION = "2025.4.4"  # the newest release installable on Python 3.13.0
# Integrations this check loads (their manifests' requirements are installed up front).
INTEGRATIONS = ["http", "api", "auth", "onboarding", "config", "mqtt", "recorder", "history"]
DEVICE = "hacheck"
SCENARIO = "spasm-cluster"
FREEZE_S = 35.0  # how long the daemon is frozen (SIGSTOP), as in issue 15
HEARTBEAT_S = 12.0  # the monitor's --heartbeat (status packets come every 10 s of board time)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    say("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"process {proc.args} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s") from None
            time.sleep(0.5)


def find_python() -> str:
    """A Python 3.13+ that really runs (a pyenv shim may exist without its version)."""
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.1[3-9]*/bin/python"), reverse=True)
    for cand in ["python3.13", "python3", *map(str, pyenv)]:
        exe = shutil.which(cand) or cand
        with contextlib.suppress(OSError):
            r = subprocess.run([exe, "-c", "import sys; print(sys.version_info >= (3, 13))"],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == "True":
                return exe
    raise SystemExit("no Python 3.13 or newer found: pass --python")


# -- 1. install ----------------------------------------------------------------------------------

def install(python: str, root: Path, version: str) -> Path:
    """The venv's python with Home Assistant ``version`` and the integrations' needs."""
    venv = root / "venv"
    vpy = venv / "bin" / "python"
    if vpy.exists() and _installed_version(vpy) == version:
        say(f"Home Assistant {version} already installed in {venv}")
        return vpy
    if not vpy.exists():
        run([python, "-m", "venv", str(venv)])
    pip = [str(vpy), "-m", "pip", "--disable-pip-version-check"]
    dl = root / "download"
    dl.mkdir(parents=True, exist_ok=True)
    run(pip + ["download", "-q", "--no-deps", "-d", str(dl), f"homeassistant=={version}"])
    wheel = next(dl.glob(f"homeassistant-{version}-*.whl"))
    cons = root / f"constraints-{version}.txt"
    with zipfile.ZipFile(wheel) as z:
        cons.write_text(z.read("homeassistant/package_constraints.txt").decode())
        reqs = _integration_requirements(z, INTEGRATIONS)
    # -c replaces any constraint file from pip's own configuration: Home Assistant's pins
    # are the ones that matter here.
    run(pip + ["install", "-q", "-c", str(cons), str(wheel), *reqs])
    got = _installed_version(vpy)
    if got != version:
        raise SystemExit(f"installed Home Assistant reports {got!r}, not {version}")
    return vpy


def _installed_version(vpy: Path) -> str | None:
    r = subprocess.run([str(vpy), "-c", "from homeassistant.const import __version__ as v;"
                        "print(v)"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def _integration_requirements(z: zipfile.ZipFile, names: list[str]) -> list[str]:
    """Requirements of ``names`` and of the integrations they depend on."""
    seen: set[str] = set()
    reqs: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            manifest = json.loads(z.read(f"homeassistant/components/{name}/manifest.json"))
        except KeyError:
            continue
        reqs += [r for r in manifest.get("requirements", []) if r not in reqs]
        todo += manifest.get("dependencies", [])
    return sorted(reqs)


# -- 2. mosquitto and Home Assistant -------------------------------------------------------------

@contextlib.contextmanager
def process(cmd: list[str], log: Path, **kw: Any) -> Iterator[subprocess.Popen[Any]]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mosquitto_conf(work: Path, port: int) -> Path:
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type all\n")
    return conf


def ha_config(cfg: Path, port: int) -> None:
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "configuration.yaml").write_text(f"""\
homeassistant:
  name: spasmwatch check
  time_zone: UTC
  unit_system: metric
  latitude: 0
  longitude: 0
  elevation: 0
  country: GB
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
history:
recorder:
  commit_interval: 1
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
""")


class HA:
    """Home Assistant's REST API with a bearer token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def call(self, method: str, path: str, body: Any = None, form: bool = False,
             auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        data = None
        if body is not None:
            if form:
                data = "&".join(f"{k}={urllib.request.quote(str(v))}"
                                for k, v in body.items()).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else None

    def onboard(self) -> None:
        client_id = self.base + "/"
        r = self.call("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "check", "username": "check",
            "password": "spasmwatch-check-only", "language": "en"}, auth=False)
        tok = self.call("POST", "/auth/token", {
            "grant_type": "authorization_code", "code": r["auth_code"],
            "client_id": client_id}, form=True, auth=False)
        self.token = tok["access_token"]

    def setup_mqtt(self, broker_port: int) -> dict[str, Any]:
        flow = self.call("POST", "/api/config/config_entries/flow",
                         {"handler": "mqtt", "show_advanced_options": False})
        for _ in range(5):
            if flow.get("type") != "form":
                break
            fields = {f["name"] for f in flow.get("data_schema", [])}
            answer: dict[str, Any] = {}
            if "broker" in fields:
                answer = {"broker": "127.0.0.1", "port": broker_port}
            elif "next_step_id" in fields or flow.get("menu_options"):
                answer = {"next_step_id": "broker"}
            flow = self.call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                             answer)
        if flow.get("type") != "create_entry":
            raise SystemExit(f"MQTT config flow did not finish: {flow}")
        return dict(flow)

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.call("GET", "/api/states")}

    def template(self, tpl: str) -> str:
        req = urllib.request.Request(self.base + "/api/template",
                                     data=json.dumps({"template": tpl}).encode(),
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(r.read().decode())


def wait_for(what: str, pred: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


class Failed(Exception):
    pass


# -- 3. and 4. the monitor and the checks ---------------------------------------------------------

def monitor_config(work: Path, broker: int, web: int) -> Path:
    p = work / "spasmwatch.toml"
    p.write_text(f"""\
[audio]
enabled = false
[desktop]
enabled = false
[webui]
enabled = true
host = "127.0.0.1"
port = {web}
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker}
device_id = "{DEVICE}"
keepalive_s = 5
""")
    return p


def daemon_status(web: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/status", timeout=5) as r:
        return dict(json.loads(r.read()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", help="Python 3.13+ for Home Assistant's venv (default: the "
                    "first that works of python3.13, python3, ~/.pyenv/versions/3.13*)")
    ap.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "spasmwatch-ha",
                    help="where the venv (and downloads) live")
    ap.add_argument("--ha-version", default=HA_VERSION)
    ap.add_argument("--install-only", action="store_true")
    ap.add_argument("--speed", type=float, default=1.5,
                    help=f"the simulation's speed ({SCENARIO}: 600 s of night)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    vpy = install(args.python or find_python(), args.dir, args.ha_version)
    say(f"Home Assistant {_installed_version(vpy)} in {vpy.parent.parent}")
    if args.install_only:
        return 0
    work = Path(tempfile.mkdtemp(prefix="spasmwatch-ha-"))
    try:
        return check(vpy, work, args.speed)
    finally:
        if args.keep:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


ENTITIES = {  # Home Assistant's entity ids for the discovery's components
    "alert": "event.spasmwatch_alert",
    "alarm_active": "binary_sensor.spasmwatch_alarm_active",
    "sensor_link": "binary_sensor.spasmwatch_sensor_link",
    "state": "sensor.spasmwatch_state",
    "battery": "sensor.spasmwatch_sensor_battery",
    "events_last_hour": "sensor.spasmwatch_movements_in_the_last_hour",
    "acknowledge": "button.spasmwatch_acknowledge",
    "mute": "button.spasmwatch_mute_30_min",
}


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        try:
            detail, ok = fn(), True
        except (Failed, AssertionError, urllib.error.URLError, OSError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self.results.append((name, ok, detail))
        say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        return ok


def check(vpy: Path, work: Path, speed: float) -> int:
    mosq_exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker, ha_port, web = free_port(), free_port(), free_port()
    cfg = work / "ha-config"
    ha_config(cfg, ha_port)
    conf = mosquitto_conf(work, broker)
    version = _installed_version(vpy)
    checks = Checks()
    with contextlib.ExitStack() as stack:
        mosq = stack.enter_context(process([mosq_exe, "-c", str(conf)], work / "mosquitto.log"))
        wait_port(broker, 10, mosq)
        say(f"mosquitto on 127.0.0.1:{broker}; starting Home Assistant {version} on "
            f"127.0.0.1:{ha_port} (the first start takes a while)")
        hass = stack.enter_context(process(
            [str(vpy), "-m", "homeassistant", "--config", str(cfg), "--skip-pip",
             "--log-file", str(work / "ha.log")], work / "ha.out"))
        wait_port(ha_port, 900, hass)
        api = HA(ha_port)
        wait_for("onboarding to be offered", lambda: _quiet(
            lambda: api.call("GET", "/api/onboarding", auth=False)), timeout=300)
        api.onboard()
        say("onboarded a user through /api/onboarding/users; setting up MQTT")
        entry = api.setup_mqtt(broker)
        say(f"MQTT config entry: {entry.get('title')}")

        mcfg = monitor_config(work, broker, web)
        mon_cmd = [sys.executable, "-m", "spasmwatch", "run", "--simulate", SCENARIO,
                   "--speed", str(speed), "--heartbeat", str(HEARTBEAT_S),
                   "--config", str(mcfg)]
        env = {**os.environ, "HOME": str(work / "home")}
        mon = stack.enter_context(process(mon_cmd, work / "monitor.log", env=env))
        say("$ " + " ".join(mon_cmd))
        wait_port(web, 120, mon)
        started = time.time()

        def states() -> dict[str, dict[str, Any]]:
            return api.states()

        def entities() -> str:
            got = wait_for("the 8 entities", lambda: (lambda s: s if all(
                e in s and s[e]["state"] != "unavailable" for e in ENTITIES.values())
                else None)(states()), timeout=60)
            mine = json.loads(api.template("{{ integration_entities('mqtt') | tojson }}"))
            devices = json.loads(api.template(
                "{{ integration_entities('mqtt') | map('device_id') | unique | list"
                " | tojson }}"))
            assert sorted(mine) == sorted(ENTITIES.values()), mine
            assert len(devices) == 1, devices
            return (f"{len(mine)} entities under one device; state "
                    f"{got[ENTITIES['state']]['state']!r}, sensor link "
                    f"{got[ENTITIES['sensor_link']]['state']}, battery "
                    f"{got[ENTITIES['battery']]['state']} mV")

        def follows() -> str:
            def same() -> str | None:
                d, s = daemon_status(web), states()
                ha_state = s[ENTITIES["state"]]["state"]
                return ha_state if ha_state == d["state"] else None
            return f"Home Assistant shows {wait_for('the same state', same, 30)!r} like the daemon"

        def alarm() -> str:
            wait_for("an alarm in Home Assistant", lambda: states()[ENTITIES["state"]][
                "state"] == "alarm", timeout=300 / max(speed, 0.1) + 60)
            s = states()
            assert s[ENTITIES["alarm_active"]]["state"] == "on"
            attrs = s[ENTITIES["state"]]["attributes"]
            assert attrs.get("alarm") and "spasm-like" in attrs["alarm"]["message"], attrs
            ev = s[ENTITIES["alert"]]
            size = len(json.dumps(ev["attributes"]).encode())
            assert ev["attributes"].get("event_type") == "alarm", ev["attributes"]
            assert size < 16384, size
            return (f"state alarm, alarm active on, the alarm in the state's attributes; "
                    f"event attributes {size} bytes")

        def press(button: str, want: Callable[[dict[str, Any]], bool], what: str) -> str:
            api.call("POST", "/api/services/button/press", {"entity_id": ENTITIES[button]})
            d = wait_for(f"the daemon to see {button}", lambda: (lambda x: x if want(x)
                                                                 else None)(daemon_status(web)),
                         timeout=20)
            ha = wait_for("Home Assistant to show it", lambda: (lambda st: st if st ==
                          d["state"] else None)(states()[ENTITIES["state"]]["state"]), 20)
            return f"{what}; daemon state {d['state']!r}, Home Assistant {ha!r}"

        def ack() -> str:
            return press("acknowledge", lambda d: d["alarm"] and d["alarm"]["acknowledged"],
                         "the daemon's alarm is acknowledged")

        def mute() -> str:
            return press("mute", lambda d: d["muted"], "the daemon is muted")

        def alert_test() -> str:
            t0 = _iso(time.time() - 1)
            r = subprocess.run([sys.executable, "-m", "spasmwatch", "alert", "test",
                                "--config", str(mcfg)], capture_output=True, text=True,
                               env=env, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            wait_for("the test event", lambda: states()[ENTITIES["alert"]]["attributes"].get(
                "event_type") == "test", 20)
            time.sleep(3)  # let a Will (if one were fired) reach Home Assistant's history
            hist = api.call("GET", f"/api/history/period/{t0}?filter_entity_id="
                            f"{ENTITIES['state']},{ENTITIES['sensor_link']}"
                            "&minimal_response&no_attributes")
            seen = sorted({h["state"] for series in hist for h in series})
            assert "unavailable" not in seen, seen
            mon_line = next(ln for ln in r.stdout.splitlines() if ln.startswith("mqtt"))
            return f"{mon_line.strip()!r}; states seen meanwhile {seen} (never unavailable)"

        def outage() -> str:
            """The broker goes down; meanwhile the sensor falls silent (a fault) and comes
            back (cleared), and the parent unmutes on the page. After the broker's restart
            (without its retained messages) Home Assistant must show the current state
            and get a summary of the missed notices."""
            nonlocal mosq
            t0 = _iso(time.time() - 1)
            stop(mosq)
            wait_for("Home Assistant to notice", lambda: states()[ENTITIES["state"]][
                "state"] == "unavailable", 60)
            board = board_pid(mon.pid)
            os.kill(board, signal.SIGSTOP)
            try:
                wait_for("the sensor-timeout fault", lambda: "heartbeat_timeout" in
                         fault_kinds(daemon_status(web)), 20 + HEARTBEAT_S * 2)
            finally:
                os.kill(board, signal.SIGCONT)
            wait_for("the fault to clear", lambda: "heartbeat_timeout" not in
                     fault_kinds(daemon_status(web)), 60)
            r = post_daemon(web, "/api/mute", {"minutes": 0})  # a parent's change meanwhile
            mosq = stack.enter_context(
                process([mosq_exe, "-c", str(conf)], work / "mosquitto2.log"))
            wait_port(broker, 10, mosq)

            def current() -> str | None:
                d, st = daemon_status(web), states()[ENTITIES["state"]]
                same = st["state"] == d["state"] and sorted(fault_kinds(st["attributes"])) \
                    == sorted(fault_kinds(d))
                return st["state"] if same else None
            got = wait_for("the current state after the broker's restart", current, 120)

            def summary() -> dict[str, Any] | None:
                hist = api.call("GET", f"/api/history/period/{t0}?filter_entity_id="
                                f"{ENTITIES['alert']}")
                for series in hist:
                    for h in series:
                        if h["attributes"].get("kind") == "missed_while_disconnected":
                            return dict(h["attributes"])
                return None
            missed = wait_for("the summary of missed notices", summary, 30)
            kinds = sorted({m["kind"] for m in missed["missed"]})
            assert {"heartbeat_timeout", "fault_cleared"} <= set(kinds), kinds
            return (f"broker stopped; meanwhile a sensor-timeout fault was raised and cleared "
                    f"and the daemon {r['answer']}; after the broker's restart (retained "
                    f"messages lost) Home Assistant shows the current state {got!r} and got a "
                    f"'{missed['event_type']}' summary of {missed['missed_total']} missed "
                    f"notices ({', '.join(kinds)})")

        def frozen() -> str:
            """As in issue 15: the daemon frozen for 35 s (SIGSTOP), then resumed."""
            t_stop = time.monotonic()
            mon.send_signal(signal.SIGSTOP)  # the broker drops it after 1.5 keepalives
            try:
                wait_for("the Last Will", lambda: states()[ENTITIES["state"]][
                    "state"] == "unavailable", 30)
                will_s = time.monotonic() - t_stop
                time.sleep(max(0.0, FREEZE_S - will_s))
            finally:
                mon.send_signal(signal.SIGCONT)
            t_cont = time.monotonic()

            def back() -> str | None:
                st = states()[ENTITIES["state"]]
                kinds = fault_kinds(st["attributes"]) + fault_kinds(daemon_status(web))
                return st["state"] if st["state"] != "unavailable" and \
                    "delivery_failed_mqtt" not in kinds else None
            got = wait_for("the daemon back, without a stale delivery fault", back, 60)
            return (f"frozen {FREEZE_S:.0f} s: unavailable (Last Will) after {will_s:.1f} s; "
                    f"{time.monotonic() - t_cont:.1f} s after resuming Home Assistant shows "
                    f"{got!r}, and neither it nor the daemon has delivery_failed_mqtt")

        def log_clean() -> str:
            text = (work / "ha.log").read_text(errors="replace")
            bad = [ln for ln in text.splitlines() if "exceed maximum size" in ln or (
                ("ERROR" in ln or "WARNING" in ln) and ("mqtt" in ln.lower() or
                                                        "spasmwatch" in ln.lower())
                and "Disconnected from MQTT" not in ln and "Error returned from MQTT" not in ln)]
            assert not bad, "\n".join(bad[:10])
            return "no MQTT/spasmwatch error or warning, no attribute-size warning"

        checks.run("entities", entities)
        checks.run("state follows the daemon", follows)
        checks.run("alarm", alarm)
        checks.run("Acknowledge button round trip", ack)
        checks.run("Mute button round trip", mute)
        checks.run("alert test beside the daemon", alert_test)
        checks.run("broker outage, state changed meanwhile", outage)
        checks.run("frozen daemon (SIGSTOP)", frozen)
        checks.run("Home Assistant's log", log_clean)
        checks.run("sizes the broker saw", lambda: published_sizes(work))
        if mon.poll() is not None:
            checks.results.append(("monitor kept running", False,
                                   f"exited with {mon.returncode}"))
        say(f"monitor ran {time.time() - started:.0f} s")
    failed = [n for n, ok, _ in checks.results if not ok]
    say(f"Home Assistant {version}: {len(checks.results) - len(failed)} of "
        f"{len(checks.results)} checks passed" + (f"; FAILED: {', '.join(failed)}"
                                                  if failed else ""))
    return 1 if failed else 0


def published_sizes(work: Path) -> str:
    """The largest message the daemon published per topic (from mosquitto's log)."""
    sizes: dict[str, int] = {}
    pat = re.compile(rf"Received PUBLISH from spasmwatch-{DEVICE} \(.*?'([^']+)', \.\.\. "
                     r"\((\d+) bytes\)")
    for log in sorted(work.glob("mosquitto*.log")):
        for m in pat.finditer(log.read_text(errors="replace")):
            sizes[m[1]] = max(sizes.get(m[1], 0), int(m[2]))
    base = f"spasmwatch/{DEVICE}/"
    alert, state = sizes.get(base + "alert", 0), sizes.get(base + "state", 0)
    assert 0 < alert < 16384 and 0 < state < 16384, sizes
    snippet = sizes.get(base + "alarm/snippet")
    return (f"largest alert event {alert} bytes, state {state} bytes"
            + (f", the alarm's raw snippet {snippet} bytes on its own topic" if snippet
               else ", no snippet published"))


def fault_kinds(snapshot_or_attributes: dict[str, Any]) -> list[str]:
    return [f["kind"] for f in snapshot_or_attributes.get("faults") or []]


def board_pid(monitor_pid: int) -> int:
    """The virtual board (a MicroPython process) the simulating monitor started."""
    for task in Path(f"/proc/{monitor_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"micropython" in cmd:
                return int(child)
    raise Failed(f"no MicroPython child of the monitor (pid {monitor_pid})")


def _quiet(fn: Callable[[], Any]) -> Any:
    try:
        return fn() or True
    except (SystemExit, OSError, urllib.error.URLError):
        return None


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def post_daemon(web: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{web}{path}", data=json.dumps(body).encode(),
                                 headers={"X-Spasmwatch": "1", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return dict(json.loads(r.read()))


if __name__ == "__main__":
    sys.exit(main())
