"""First boot over BLE (issue 10): the strict ``bluetooth`` shim and the firmware's
BLE link under the real MicroPython interpreter.

Names carry irq_exception, interleaved_irqs and failed_connection (see
tests/test_firstboot.py for the others).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from spasmwatch.firmware import control, wire
from spasmwatch.host.links.ble_link import BleLink
from spasmwatch.host.links.bleak_bumble import BumbleCentral
from spasmwatch.simulator.ble_bridge import BleBridge

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "simulator" / "board"

# skips without MicroPython, fails under CI (tests/tooling.py)
pytestmark = pytest.mark.usefixtures("micropython_exe")

FAKE_BLE = """
import bluetooth
from firmware import ble_link

class FakeBLE:
    # bluetooth.BLE's surface as BleLink uses it; IRQs are called by the test.
    def __init__(self):
        self.value = b""
        self.fail_read = False
        self.adv = 0
        self.buffers = {}
    def active(self, *a): return True
    def config(self, **kw): pass
    def irq(self, h): self.handler = h
    def gatts_register_services(self, s): return ((1, 2, 3),)
    def gatts_set_buffer(self, h, n, append=False): self.buffers[h] = n
    def gap_advertise(self, *a, **kw): self.adv += 1
    def gap_disconnect(self, c): return True
    def gatts_read(self, h):
        if self.fail_read:
            raise OSError(22)
        return self.value
    def gatts_write(self, h, d): pass
    def gatts_notify(self, c, h, d): pass

ble = FakeBLE()
link = ble_link.BleLink(ble)
ble.handler(1, (0, 0, memoryview(b"\\x00" * 6)))  # a central connects
"""


def _run(run_micropython: Any, code: str, timeout: float = 120) -> dict[str, str]:
    env_had = os.environ.pop("SPASMWATCH_BLE_BRIDGE", None)
    try:
        proc = run_micropython(code, extra_path=[BOARD], timeout=timeout)
    finally:
        if env_had is not None:
            os.environ["SPASMWATCH_BLE_BRIDGE"] = env_had
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def test_irq_exception_disables_the_handler_on_the_strict_board(run_micropython: Any) -> None:
    # modbluetooth.c invoke_irq_handler_run_protected: print, then irq_handler = None.
    code = (
        "import bluetooth\n"
        "calls = []\n"
        "def handler(ev, data):\n"
        "    calls.append(ev)\n"
        "    raise ValueError('boom')\n"
        "bluetooth.BLE().irq(handler)\n"
        "bluetooth._irq(3, (0, 1))\n"
        "bluetooth._irq(3, (0, 1))\n"
        "print('CALLS', len(calls), bluetooth._state['irq'] is None)\n"
    )
    out = _run(run_micropython, code)
    assert out["CALLS"] == "1 True"
    assert out["Unhandled"].startswith("exception in IRQ callback handler")


def test_irq_exception_ble_link_guards_its_handler(run_micropython: Any) -> None:
    code = FAKE_BLE + (
        "ble.fail_read = True\n"
        "ble.handler(3, (0, 3))\n"  # gatts_read raises inside the handler
        "ble.fail_read = False\n"
        "ble.value = b'\\x01\\x02\\x03\\x04\\x05'\n"
        "ble.handler(3, (0, 3))\n"
        "print('GOT', link.poll(), link.irq_errors, ble.buffers.get(3))\n"
    )
    out = _run(run_micropython, code)
    assert out["GOT"] == "[b'\\x01\\x02\\x03\\x04\\x05'] 1 64"


def test_interleaved_irqs_lose_no_control_payload(run_micropython: Any) -> None:
    # The IRQ handler runs on another thread while the main loop polls, as on the ESP32
    # (NimBLE task, GIL switches every 32 bytecodes): every payload arrives, in order.
    code = FAKE_BLE + (
        "import _thread, time\n"
        "N = 20000\n"
        "state = {'done': False}\n"
        "def radio():\n"
        "    for i in range(N):\n"
        "        while link.rx_w - link.rx_r >= ble_link.MAX_RX:\n"
        "            time.sleep_us(50)\n"  # the host waits for its write to be taken
        "        ble.value = b'%d' % i\n"
        "        ble.handler(3, (0, 3))\n"
        "    state['done'] = True\n"
        "_thread.start_new_thread(radio, ())\n"
        "n = 0\n"
        "in_order = True\n"
        "t0 = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), t0) < 60000:\n"
        "    for p in link.poll():\n"
        "        in_order = in_order and p == b'%d' % n\n"
        "        n += 1\n"
        "    if state['done'] and link.rx_r == link.rx_w:\n"
        "        break\n"
        "print('N', n, in_order, link.rx_dropped, link.irq_errors)\n"
    )
    out = _run(run_micropython, code)
    assert out["N"] == "20000 True 0 0"


def test_irq_exception_addr_memoryview_is_reused_after_the_handler(
    run_micropython: Any,
) -> None:
    code = (
        "import bluetooth\n"
        "kept = []\n"
        "def handler(ev, data):\n"
        "    kept.append((data[2], bytes(data[2])))\n"
        "bluetooth.BLE().irq(handler)\n"
        "bluetooth._addr_irq(1, (0, 0, '112233445566'))\n"
        "mv, copy = kept[0]\n"
        "print('ADDR', type(mv).__name__, copy == bytes.fromhex('112233445566'), "
        "bytes(mv) == copy)\n"
    )
    assert _run(run_micropython, code)["ADDR"] == "memoryview True False"


FIRMWARE = """
import time, bluetooth
from firmware.ble_link import BleLink
from firmware import wire

link = BleLink()
deadline = time.ticks_add(time.ticks_ms(), 25000)
seq = 0
while time.ticks_diff(deadline, time.ticks_ms()) > 0:
    link.service()
    for c in link.poll():
        link.send(wire.encode(seq, (wire.KIND_REPLY, 0, c[0], 0, len(c))))
    if link.connected() and link.send(
            wire.encode(seq, (wire.KIND_SUMMARY, seq, 60, 1, 2, 3, 100, 50, 1))):
        seq += 1
    if bluetooth._session.dead:
        break
    time.sleep_ms(5)
print("FAILED", link.failed_connects, "IRQERR", link.irq_errors, "BUSY", link.busy,
      "DISABLED", bluetooth._state["irq_disabled"])
"""


async def _start(script: Path, bridge: BleBridge) -> asyncio.subprocess.Process:
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(BOARD), str(REPO), ".frozen"]),
               SPASMWATCH_BLE_BRIDGE=f"127.0.0.1:{bridge.firmware_port}",
               SPASMWATCH_SIM_SPEED="1")
    return await asyncio.create_subprocess_exec(
        "micropython", str(script), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _until(pred: Any, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def test_failed_connection_board_advertises_again_and_notify_starvation(
    tmp_path: Path,
) -> None:
    script = tmp_path / "fw.py"
    script.write_text(FIRMWARE)

    async def body() -> str:
        bridge = BleBridge()
        await bridge.start()
        central = BumbleCentral.on_link(bridge.link)
        proc = await _start(script, bridge)
        ble = BleLink("spasmwatch", backend=central, scan_timeout=5)
        try:
            assert await _until(lambda: bridge.advertise_calls >= 1, 15)
            # NimBLE: a connection attempt failed; advertising has stopped.
            await bridge.fail_connection()
            assert await _until(lambda: bridge.advertise_calls >= 2, 5), \
                "the board never advertised again after a failed connection"
            await ble.open()  # a central finds and connects to it
            got: list[int] = []
            while len(got) < 20:
                seq, rec = wire.decode(await asyncio.wait_for(ble.recv(), 5))
                if rec[0] == wire.KIND_SUMMARY:
                    got.append(seq)
            # Credits withheld (no connection events): notifies fail, nothing crashes;
            # restored: the stream goes on.
            bridge.starve_credits(True)
            await asyncio.sleep(1.0)
            bridge.starve_credits(False)
            more: list[int] = []
            while len(more) < 10:
                seq, rec = wire.decode(await asyncio.wait_for(ble.recv(), 5))
                if rec[0] == wire.KIND_SUMMARY:
                    more.append(seq)
            await ble.send_control(control.encode_ping(1))
        finally:
            await ble.close()
            await central.close()
            await bridge.close()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return out.decode()

    text = asyncio.run(asyncio.wait_for(body(), 90))
    last = text.strip().splitlines()[-1].split()
    fields = dict(zip(last[::2], last[1::2], strict=False))
    assert fields["FAILED"] == "1" and fields["IRQERR"] == "0", text
    assert int(fields["BUSY"]) > 0 and fields["DISABLED"] == "False", text
    assert "Traceback" not in text
