"""``spasmwatch alert test|ack|mute``.

``test`` fires a test alert on every configured channel and says which succeeded (exit 1
if any failed). ``ack`` and ``mute`` talk to the running daemon through its loopback web
API (``[webui]`` in the config, or ``--url``).
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any, TextIO

from spasmwatch.host.alerts.webui import HEADER
from spasmwatch.host.cli import argtypes
from spasmwatch.host.errors import UserError
from spasmwatch.host.settings import Settings, load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alert", help="test the alert channels; acknowledge or mute")
    sub = p.add_subparsers(dest="alert_command", required=True)
    t = sub.add_parser("test", help="send a test alert on every configured channel")
    t.add_argument("--config", help="configuration file")
    t.set_defaults(func=cmd_test)
    a = sub.add_parser("ack", help="acknowledge the current alarm (running daemon)")
    a.add_argument("--config", help="configuration file")
    a.add_argument("--url", help="the daemon's web address (default from [webui])")
    a.set_defaults(func=cmd_ack)
    m = sub.add_parser("mute", help="silence audible alerts for a while (running daemon)")
    m.add_argument("--minutes", type=argtypes.MINUTES, required=True, help="how long; 0 unmutes")
    m.add_argument("--config", help="configuration file")
    m.add_argument("--url", help="the daemon's web address (default from [webui])")
    m.set_defaults(func=cmd_mute)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, must_exist=bool(args.config))


def cmd_test(args: argparse.Namespace, out: TextIO) -> int:
    from spasmwatch.host.alerts.delivery import send_test_alerts

    s = _settings(args)
    results = send_test_alerts(s)
    if not results:
        raise UserError(f"{s.source}: no channel is configured (see spasmwatch config init)")
    for r in results:
        out.write(f"{r.channel:<8} {r.label:<18} {r.detail}\n")
    failed = [r.channel for r in results if r.ok is False]
    out.write(f"{len(results) - len(failed)} of {len(results)} channel(s) ok"
              + (f"; failed: {', '.join(failed)}\n" if failed else "\n"))
    return 1 if failed else 0


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    w = _settings(args).webui
    host = f"[{w.host}]" if ":" in w.host else w.host
    return f"http://{host}:{w.port}"


def post(base: str, path: str, body: dict[str, Any], timeout: float = 5.0,
         config: str | None = None) -> dict[str, Any]:
    """POST to the daemon's API; a UserError with a clear reason on any failure."""
    from spasmwatch.host.alerts.webui import TOKEN_HEADER
    from spasmwatch.host.pairing import settings_folder, web_token

    # security: the web token kept beside the settings (the same user runs the daemon)
    req = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={HEADER: "1", "Content-Type": "application/json",
                 TOKEN_HEADER: web_token(settings_folder(config))})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            msg = exc.reason
        raise UserError(f"{base}{path}: {msg}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach the spasmwatch daemon at {base} ({reason}); is "
                        "`spasmwatch run` running with [webui] enabled?") from None


def cmd_ack(args: argparse.Namespace, out: TextIO) -> int:
    res = post(_base_url(args), "/api/ack", {}, config=args.config)
    out.write(f"{res['answer']} (state now: {res['status']['state']})\n")
    return 0


def cmd_mute(args: argparse.Namespace, out: TextIO) -> int:
    if args.minutes < 0:
        raise UserError("--minutes must be 0 (unmute) or more")
    res = post(_base_url(args), "/api/mute", {"minutes": args.minutes}, config=args.config)
    out.write(f"{res['answer']} (state now: {res['status']['state']})\n")
    return 0
