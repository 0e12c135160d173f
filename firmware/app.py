"""The board's main loop: MPU6050 FIFO -> detector -> wire packets -> ring -> links.

API:
    App(sensor, links, battery=None, key=b"", clock=None, boot=0)
    .step() -> int             # one loop iteration; returns ms to sleep before the next
    .handle(link, payload)     # one control payload (firmware/control.py) from a link
    .seq                       # next stream sequence number
    build() -> App             # the board's wiring (hal, driver, battery, serial + BLE)
    run(app=None)              # start-up, then step/sleep forever (board entry)

Each iteration: control payloads from every link (``link.poll()``) are handled; the
sensor's FIFO is drained (or, in trace-injection mode, nothing is read: SAMPLES
frames from the serial link feed the detector); finished records are encoded with the
next sequence number, kept in the ring buffer and offered to every link (a link that
cannot take a packet returns False and the host backfills with RESEND); a status
packet goes out every config.STATUS_S; pending RESEND and snippet packets are paced
out a few per iteration; each link's ``service()`` runs. The loop then sleeps until
the FIFO holds about config.FIFO_BATCH samples, config.FIFO_BATCH_EVENT while the
detector has an event open (so a finished event is sent within ~0.1 s of its close),
10 ms while injecting or sending; sleeps end on multiples of the period.

Device time (packet ``t_ms``) is ms since start-up on hal.Clock. Event and summary
times come from the detector's sample count plus the device time of its first sample
(``t_base``), so they do not drift with loop jitter. Entering or leaving injection
mode starts a fresh detector (a replayed trace is then processed exactly as the
simulator's ``detector_packets`` does) with a new ``t_base``.

RAM is bounded: the ring, snippet, sample and I2C buffers are allocated here once;
the detector's pending list is capped (config max_pending) and counted when it drops.
Only hal.py touches ``machine``/``time``.

Authentication (docs/security.md): once paired (a key file, firmware/keystore.py) every
packet out carries a tag over the boot counter and its sequence number, commands are
checked by ``authorise`` (signed, counter increasing within this boot) and a BLE
central gets stream packets only after one signed command on its connection.
"""

import sys
from array import array

from . import auth, config, control, hal, keystore, wire
from .detector import Detector
from .ring import Ring
from .snippet import Snippet


class App:

    def __init__(self, sensor, links, battery=None, key=b"", clock=None, boot=0):
        self.sensor = sensor
        self.links = links
        self.battery = battery
        # -- authentication (firmware/auth.py, docs/security.md)
        self.key = b""
        self.tagger = None
        self.boot = boot  # persisted boot counter: half of every packet's nonce
        self.cmd_cnt = 0  # last signed command counter accepted in this boot
        self.trusted = None  # (BLE link, its connection number) after a signed command
        self.auth_refused = 0
        self.set_key(key)
        self.clock = clock if clock is not None else hal.Clock()
        self.params = {}
        self.cfg = config.DetectorConfig()
        self.det = Detector(self.cfg)
        self.t_base = 0  # device ms of the detector's first sample, once known
        # (a flag, not a sentinel value: re-anchoring can move t_base below 0)
        self.based = False
        self.ring = Ring()
        self.snippet = Snippet(rate_hz=self.cfg.rate_hz)
        self.buf = array("h", [0] * (3 * max(config.MPU_MAX_READ, control.MAX_SAMPLES)))
        self.seq = 0
        self.batch_ms = config.FIFO_BATCH * 1000 // self.cfg.rate_hz
        # While an event is open the FIFO is read this often, so a finished event goes
        # out soon after the detector closes it instead of up to a whole batch later.
        self.event_ms = config.FIFO_BATCH_EVENT * 1000 // self.cfg.rate_hz
        self.next_status = 0
        self.injecting = False
        self.inject_link = None
        self.inject_refused = 0
        self.dropped_reported = 0
        self.flag_overflow = False
        self.flag_i2c = False
        # RESEND in progress: link, next seq, packets left to look at, sent, missing
        self.rs_link = None
        self.rs_next = 0
        self.rs_left = 0
        self.rs_sent = 0
        self.rs_missing = 0
        self.rs_reply_tries = 0
        self.rs_reply_until = 0
        # snippet in progress
        self.sn_link = None
        self.sn_pending = None
        self.errors = 0
        self.reanchors = 0  # sample clock corrections (reanchor)
        self.fw_hash = None  # firmware_hash(), computed on the first INFO asking for it
        self.t_first = 0  # t_base as first set (INFO_CLOCK_PPM)

    # -- packets ---------------------------------------------------------------------
    def emit(self, rec):
        """Stream packet: next seq, into the ring, offered to every link."""
        pkt = wire.encode(self.seq, rec, self.tagger)
        self.ring.put(self.seq, pkt)
        self.seq = (self.seq + 1) & 0xFFFF
        if self.seq == 0 and self.key:
            self.new_boot()  # (boot, seq) must never repeat: a wrap starts a new nonce half
        for link in self.links:
            if self.may_stream(link):
                link.send(pkt)

    def reply(self, link, opcode, result, value=0):
        """Send a command reply on ``link``; True when the link took it."""
        rec = (wire.KIND_REPLY, self.clock.now_ms(), opcode, result, value)
        return link.send(wire.encode((self.seq - 1) & 0xFFFF, rec, self.tagger))

    # -- authentication ----------------------------------------------------------------
    def set_key(self, key):
        self.key = key
        self.tagger = self._tag if key else None
        self.cmd_cnt = 0
        self.trusted = None

    def _tag(self, body):
        return auth.packet_tag(self.key, self.boot, body)

    def new_boot(self):
        try:
            self.boot = keystore.next_boot()
        except OSError as exc:
            # Cannot persist: go on in RAM (a later reboot may reuse this half-nonce).
            sys.print_exception(exc)
            self.boot = (self.boot + 1) & 0xFFFFFFFF
        self.cmd_cnt = 0

    def may_stream(self, link):
        """Stream packets go over BLE only to a central that signed a command."""
        if not self.key or link.name == "serial":
            return True
        t = self.trusted
        return t is not None and t[0] is link and t[1] == getattr(link, "connects", 0)

    def authorise(self, link, op, payload, cnt, tag):
        """True when the command may run; otherwise a RESULT_AUTH reply has been sent."""
        if tag is not None:
            got = control.check(payload, self.key, self.boot, self.cmd_cnt)
            if got > 0:
                self.cmd_cnt = got
                if link.name != "serial":
                    self.trusted = (link, getattr(link, "connects", 0))
                return True
        elif op not in control.NEEDS_AUTH and (not self.key or link.name == "serial"):
            return True
        self.auth_refused += 1
        if op == control.INJECT_START:
            self.inject_refused += 1
        self.reply(link, op, control.RESULT_AUTH, self.cmd_cnt)
        return False

    def hello(self, link, token):
        """Answer a challenge: boot counter and last command counter, tagged over token."""
        rec = (wire.KIND_REPLY, self.cmd_cnt, control.HELLO, control.RESULT_OK, self.boot)
        tagger = None
        if self.key:
            key, boot = self.key, self.boot

            def tagger(body):
                return auth.hello_tag(key, boot, token, body)

        link.send(wire.encode((self.seq - 1) & 0xFFFF, rec, tagger))

    def pair(self, link, key):
        """PAIR (USB serial only): store the new key, start a new boot counter."""
        if link.name != "serial":
            self.reply(link, control.PAIR, control.RESULT_LINK)
            return
        if key == bytes(len(key)):
            key = b""  # all zeros: unpair
        try:
            keystore.save_key(key)
        except OSError as exc:
            sys.print_exception(exc)
            self.reply(link, control.PAIR, control.RESULT_STATE)
            return
        self.set_key(key)
        self.new_boot()
        self.reply(link, control.PAIR, control.RESULT_OK, self.boot)

    def status(self, now):
        s = self.sensor
        flags = 0
        if self.injecting or (s is not None and s.ok):
            flags |= wire.ST_SENSOR_OK
        if s is not None:
            o, e = s.take_flags()
            self.flag_overflow = self.flag_overflow or o
            self.flag_i2c = self.flag_i2c or e
        if self.flag_overflow:
            flags |= wire.ST_FIFO_OVERFLOW
        if self.flag_i2c:
            flags |= wire.ST_I2C_ERROR
        self.flag_overflow = False
        self.flag_i2c = False
        mv = 0
        b = self.battery
        if b is not None:
            mv = b.read_mv()
            if b.charging():
                flags |= wire.ST_CHARGING
            if b.low(mv):
                flags |= wire.ST_BATTERY_LOW
        if self.injecting:
            flags |= wire.ST_INJECTION
        if self.det.dropped != self.dropped_reported:
            flags |= wire.ST_EVENTS_DROPPED
            self.dropped_reported = self.det.dropped
        heap_kb = hal.free_heap() // 1024
        self.emit((
            wire.KIND_STATUS, now, mv, flags, self.ring.fill_pct(), heap_kb,
            self.cfg.rate_hz, self.cfg.range_g,
        ))

    # -- samples ---------------------------------------------------------------------
    def process(self, n, now, drained=False):
        if not self.based:
            self.t_base = now - (n - 1) * 1000 // self.cfg.rate_hz
            self.t_first = self.t_base
            self.based = True
        det = self.det
        det.process(self.buf, n)
        if drained:
            self.reanchor(now)
        self.snippet.add(self.buf, n, self.t_base + det.t_ms(det.n - 1))
        if det.pending:
            base = self.t_base
            for rec in det.pop():
                self.emit((rec[0], (rec[1] + base) & 0xFFFFFFFF) + rec[2:])

    def reanchor(self, now):
        """Keep sample-count times on the device clock (the sensor's clock drifts).

        The MPU-6050 samples on its own oscillator (+-1 % and more over temperature):
        ``t_base + det.t_ms(k)`` alone drifts by tens of seconds an hour against
        ``now``. Just after the FIFO was emptied, its newest sample is between 0 and one
        sample period old; outside that window the count is off, and ``t_base`` moves
        by the difference (to the window's middle when late). Cheap: once per read.
        """
        period = 1000 // self.cfg.rate_hz
        late = now - (self.t_base + self.det.t_ms(self.det.n - 1))
        if late < 0:
            self.t_base += late  # samples counted ahead of the clock (fast sensor)
            self.reanchors += 1
        elif late > period + config.REANCHOR_SLACK_MS:
            self.t_base += late - period // 2  # slow sensor, or samples lost
            self.reanchors += 1

    def fresh_detector(self):
        self.det = Detector(self.cfg)
        self.based = False
        self.dropped_reported = 0

    # -- control ---------------------------------------------------------------------
    def handle(self, link, payload):
        try:
            op, args, _body, cnt, tag = control.split(payload)
        except control.ControlError:
            self.reply(link, payload[0] if len(payload) else 0, control.RESULT_BAD)
            return
        if op == control.HELLO:
            self.hello(link, args[0])
            return
        if op == control.PAIR:
            self.pair(link, args[0])
            return
        if op != control.SAMPLES and not self.authorise(link, op, payload, cnt, tag):
            return
        if op == control.SAMPLES:
            if link.name != "serial":
                self.reply(link, op, control.RESULT_LINK)
            elif not self.injecting:
                self.reply(link, op, control.RESULT_STATE)
            else:
                self.inject_samples(args[0])
        elif op == control.PING:
            self.reply(link, op, control.RESULT_OK, args[0])
        elif op == control.RESEND:
            self.start_resend(link, args[0], args[1])
        elif op == control.SET_TIME:
            now = self.clock.now_ms()
            self.reply(link, op, control.RESULT_OK, now)
        elif op == control.SET_PARAM:
            self.reply(link, op, self.set_param(args[0], args[1]))
        elif op == control.GET_SNIPPET:
            self.sn_link = link
            self.sn_pending = None
            self.reply(link, op, control.RESULT_OK, self.snippet.start())
        elif op == control.INJECT_START:
            # Replays are refused by ``authorise`` (counter and boot in the signature).
            self.injecting = True
            self.inject_link = link
            self.fresh_detector()
            self.next_status = 0  # a status now: the host shows the test mode at once
            self.reply(link, op, control.RESULT_OK)
        elif op == control.INFO:
            value = self.info(args[0])
            if value is None:
                self.reply(link, op, control.RESULT_ARGS)
            else:
                self.reply(link, op, control.RESULT_OK, value & 0xFFFFFFFF)
        elif op == control.INJECT_STOP:
            if self.injecting:
                self.injecting = False
                self.inject_link = None
                self.fresh_detector()
                self.next_status = 0  # and at once when it ends
                s = self.sensor
                if s is not None and s.ok:
                    try:
                        s.reset_fifo()  # drop what piled up while injecting
                    except OSError:
                        s.ok = False
            self.reply(link, op, control.RESULT_OK)

    def info(self, item):
        """One INFO item (control.INFO_*), or None for an unknown one."""
        s = self.sensor
        if item == control.INFO_VERSION:
            v = config.FIRMWARE_VERSION
            return v[0] << 16 | v[1] << 8 | v[2]
        if item == control.INFO_HASH:
            if self.fw_hash is None:
                self.fw_hash = firmware_hash()
            return self.fw_hash
        if item == control.INFO_WHOAMI:
            return s.whoami if s is not None and s.whoami >= 0 else 0xFFFFFFFF
        if item == control.INFO_SAMPLES:
            return s.samples if s is not None else 0
        if item == control.INFO_OVERFLOWS:
            return s.overflows if s is not None else 0
        if item == control.INFO_I2C_ERRORS:
            return s.i2c_errors if s is not None else 0
        if item == control.INFO_REANCHORS:
            return self.reanchors
        if item == control.INFO_BLE:
            for link in self.links:
                if link.name == "ble":
                    return (link.failed_connects & 0xFFFF) << 16 | (link.irq_errors & 0xFFFF)
            return 0
        if item == control.INFO_ERRORS:
            return self.errors
        if item == control.INFO_CLOCK_PPM:
            # Sample-count time gained on the board's clock since the first sample:
            # the re-anchoring moved t_base back by that much (a fast sensor).
            span = self.clock.now_ms() - self.t_first
            if not self.based or span <= 0:
                return 0
            return -(self.t_base - self.t_first) * 1000000 // span
        return None

    def set_param(self, pid, value):
        name = control.PARAMS.get(pid)
        if name is None:
            return control.RESULT_ARGS
        params = dict(self.params)
        params[name] = value
        try:
            cfg = config.DetectorConfig(**params)
        except (ValueError, TypeError):
            return control.RESULT_ARGS
        self.params = params
        self.cfg = cfg
        self.det.cfg = cfg
        return control.RESULT_OK

    def inject_samples(self, data):
        n = len(data) // 6
        buf = self.buf
        for i in range(3 * n):
            v = data[2 * i] | data[2 * i + 1] << 8
            buf[i] = v - 65536 if v & 0x8000 else v
        self.process(n, self.clock.now_ms())

    def start_resend(self, link, first, last):
        count = ((last - first) & 0xFFFF) + 1
        missing = 0
        if count > self.ring.size:
            # Older than the ring can hold: gone for sure, skip to what may be there.
            missing = count - self.ring.size
            first = (first + missing) & 0xFFFF
            count = self.ring.size
        self.rs_link = link
        self.rs_reply_tries = 0
        self.rs_next = first
        self.rs_left = count
        self.rs_sent = 0
        self.rs_missing = missing

    def pump_resend(self):
        link = self.rs_link
        if link is None:
            return
        budget = config.RESEND_PER_LOOP
        while self.rs_left > 0 and budget > 0:
            pkt = self.ring.get(self.rs_next)
            if pkt is None:
                self.rs_missing += 1
            else:
                if not link.send(pkt):
                    return  # busy: try this one again next iteration
                self.rs_sent += 1
                budget -= 1
            self.rs_next = (self.rs_next + 1) & 0xFFFF
            self.rs_left -= 1
        if self.rs_left == 0:
            res = control.RESULT_GONE if self.rs_missing else control.RESULT_OK
            # The reply tells the host the RESEND is over. Right after a burst of resent
            # packets BLE often has no notification buffer for it: try again in the next
            # iterations instead of losing it, unless the link is gone. Bounded in time,
            # not iterations: on a real radio buffers come back once per connection
            # event (up to config.REPLY_RETRY_MS apart on a slow connection), not at
            # loop speed.
            now = self.clock.now_ms()
            if self.rs_reply_tries == 0:
                self.rs_reply_until = now + config.REPLY_RETRY_MS
            self.rs_reply_tries += 1
            if (self.reply(link, control.RESEND, res, self.rs_sent)
                    or now >= self.rs_reply_until or not link.connected()):
                self.rs_link = None

    def pump_snippet(self):
        link = self.sn_link
        if link is None:
            return
        for _ in range(config.SNIPPET_PER_LOOP):
            item = self.sn_pending
            if item is None:
                item = self.snippet.next_record()
                if item is None:
                    self.sn_link = None
                    return
            if not link.send(wire.encode(item[0], item[1], self.tagger)):
                self.sn_pending = item
                return
            self.sn_pending = None

    # -- the loop --------------------------------------------------------------------
    def step(self):
        for link in self.links:
            for payload in link.poll():
                self.handle(link, payload)
        now = self.clock.now_ms()
        if not self.injecting and self.sensor is not None:
            # Drain the FIFO: a full read means more may be waiting.
            for _ in range(4):
                n = self.sensor.read(self.buf)
                full = n >= self.sensor.max_read
                if n:
                    # Only a read that emptied the FIFO says when its last sample was taken.
                    self.process(n, now, not full)
                if not full:
                    break
        if now >= self.next_status:
            self.status(now)
            # On a fixed grid (no drift from loop jitter); after a long stall, restart it.
            self.next_status += config.STATUS_S * 1000
            if self.next_status <= now:
                self.next_status = now + config.STATUS_S * 1000
        self.pump_resend()
        self.pump_snippet()
        for link in self.links:
            link.service()
        if self.injecting or self.rs_link is not None or self.sn_link is not None:
            period = config.INJECT_IDLE_MS
        elif self.det.active:
            period = self.event_ms
        else:
            period = self.batch_ms
        # Sleep to the next multiple of the period: the loop keeps one phase (statuses
        # stay on their grid) after a stretch of short sleeps.
        return period - self.clock.now_ms() % period


def firmware_hash():
    """First 4 bytes of SHA-256 over the firmware package's files (sorted by name; each
    name, a zero byte, its bytes): what ``spasmwatch doctor`` compares with its own copy."""
    import hashlib
    import os

    folder = config.__file__.rsplit("/", 1)[0]
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") or name.endswith(".mpy"):
            h.update(name.encode())
            h.update(b"\0")
            with open(folder + "/" + name, "rb") as f:
                while True:
                    chunk = f.read(512)
                    if not chunk:
                        break
                    h.update(chunk)
    d = h.digest()
    return d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3]


def make_links():
    from .serial_link import SerialLink

    links = [SerialLink()]
    try:
        from . import ble_link  # absent, or no Bluetooth (simulator): serial only

        cls = getattr(ble_link, "BleLink", None)
        if cls is not None:
            links.append(cls())
    except Exception as exc:  # noqa: BLE001 - the serial link must come up regardless
        sys.print_exception(exc)
    return links


def build():
    from .battery import Battery
    from .mpu6050 import MPU6050

    key = auth.load_key(config.AUTH_KEY_FILE, config.AUTH_KEY)
    try:
        boot = keystore.next_boot()
    except OSError as exc:  # read-only or full flash: still monitor, say why
        sys.print_exception(exc)
        boot = keystore.read_boot() + 1
    sensor = MPU6050(hal.make_i2c())
    sensor.init()  # a failure is reported in status packets; read() retries
    try:
        battery = Battery(hal.make_adc(config.PIN_BATTERY_ADC), config.BATTERY_DIVIDER,
                          hal.make_input(config.PIN_CHARGING))
    except (OSError, ValueError) as exc:
        sys.print_exception(exc)
        battery = None
    return App(sensor, make_links(), battery, key, boot=boot)


def run(app=None, early=b""):
    """Start-up, then step/sleep forever; ``early``: serial bytes read before (main.py)."""
    import micropython

    # Frames may contain 0x03: Ctrl-C on the serial port must not stop the board
    # (main.py has disarmed it already; this covers other entry points).
    micropython.kbd_intr(-1)
    if app is None:
        app = build()
    if early:
        for link in app.links:
            if link.name == "serial":
                link.feed(early)
    # The watchdog resets the board when the loop stops coming round (a hang in a
    # driver, a deadlock): fed once per iteration, only from here.
    wdt = hal.make_wdt(config.WDT_MS)
    failures = 0
    while True:
        try:
            ms = app.step()
            failures = 0
        except Exception as exc:  # noqa: BLE001 - keep monitoring; reset if it persists
            app.errors += 1
            failures += 1
            sys.print_exception(exc)
            if failures >= 10:
                hal.reset()
            ms = 100
        if wdt is not None:
            wdt.feed()
        hal.sleep_ms(ms)
