"""Notifications: alarms and "waiting for approval" reach a local SMTP server and a local webhook."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import select

from protocols.language.parse import parse_text
from protocols.run.notify import Notifier, NotifyConfig
from store.schema import Alarm
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP: 220, EHLO/HELO 250, MAIL/RCPT 250, DATA 354 … '.', QUIT 221."""

    def handle(self) -> None:
        self.request.settimeout(5.0)
        self.wfile.write(b"220 test ESMTP\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                body = b"".join(iter(lambda: self.rfile.readline(), b".\r\n"))
                self.server.messages.append(body.decode())  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.server.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))  # type: ignore
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _servers() -> Iterator[tuple[socketserver.TCPServer, http.server.HTTPServer]]:
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    smtp.daemon_threads = True
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    smtp.messages, hook.posts = [], []  # type: ignore[attr-defined]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in (smtp, hook)
    ]
    for t in threads:
        t.start()
    try:
        yield smtp, hook
    finally:
        for s in (smtp, hook):
            s.shutdown()
            s.server_close()
        for t in threads:
            t.join(5.0)


def _notify_table(smtp_port: int, hook_port: int) -> str:
    return f"""
[notify]
email = {{ host = "127.0.0.1", port = {smtp_port}, from = "rig@lab.test", to = ["night@lab.test"], timeout_s = 2 }}
webhook = "http://127.0.0.1:{hook_port}/chiptwin"
on = ["alarm", "approval"]
"""


STEPS = """
[[steps]]
kind = "wait"
duration = "40 h"
"""


def test_an_interlock_alarm_is_mailed_and_posted_naming_run_chip_and_alarm(tmp_path) -> None:
    scenario = "seed = 1\n[sensors.pressure]\nnoise_sd = 0.05\nvalues = { inlet_pressure = 30.0 }\n"
    with _servers() as (smtp, hook):
        text = protocol_text(
            _notify_table(smtp.server_address[1], hook.server_address[1]) + STEPS,
            '"pressure > 250 mbar for 10 s -> safe_state, alarm"',
        )
        with sim_runner(tmp_path, text, scenario, rate=600.0) as (runner, _sim):
            background = Background(runner)
            try:
                assert wait_until(lambda: smtp.messages and hook.posts, 20.0), "nothing was delivered"
            finally:
                runner.control.stop("aborted", "test over")
                background.result(10.0)
            run_id = runner.run_id
        mail = smtp.messages[0]
        assert f"run {run_id}" in mail and "liver4" in mail and "chip1, chip2" in mail
        assert "interlock:inlet_pressure" in mail and "critical" in mail
        post = hook.posts[0]
        assert post["run_id"] == run_id and post["chips"] == ["chip1", "chip2"] and post["event"] == "alarm"
        assert post["source"] == "interlock:inlet_pressure" and "pressure > 250" in post["message"]


def test_a_dead_server_never_stops_the_run_it_becomes_a_warning_alarm() -> None:
    warnings: list[str] = []
    config = NotifyConfig(webhook="http://127.0.0.1:9/nothing-listens", retries=2, timeout_s=0.5)
    notifier = Notifier(config, 7, "liver4", ("chip1",), "test", warn=warnings.append)
    notifier.alarm_hook("critical", "interlock:inlet_pressure", "pressure high")
    notifier.alarm_hook("warning", "notify", "not sent again")  # the notifier's own warnings are not sent
    assert notifier.flush(10.0)
    assert len(notifier.failed) == 1 and not notifier.sent
    assert len(warnings) == 1 and "run 7" in warnings[0] and "after 2 attempts" in warnings[0]


def test_a_failed_delivery_is_a_warning_alarm_row(tmp_path) -> None:
    table = '\n[notify]\nwebhook = "http://127.0.0.1:9/x"\nretries = 1\ntimeout_s = 0.5\n'
    with sim_runner(tmp_path, protocol_text(table + STEPS.replace("40 h", "1 h"))) as (runner, _sim):
        runner.ctx.recorder.alarm(runner.ctx.rig_id, runner.run_id, "critical", "test", "something broke")
        assert runner.ctx.notifier.flush(10.0)
        with runner.ctx.recorder.engine.connect() as c:
            rows = c.execute(select(Alarm).where(Alarm.run_id == runner.run_id)).all()
    assert [(a.severity, a.source) for a in rows] == [("critical", "test"), ("warning", "notify")]


def test_notify_table_errors_name_the_line() -> None:
    bad = '\n[notify]\nwebhook = "ftp://x"\npager = "555"\non = ["alarm", "birthday"]\n'
    _protocol, problems = parse_text(protocol_text(bad + STEPS))
    text = "\n".join(f"{p.line}: {p.message}" for p in problems)
    lines = protocol_text(bad + STEPS).splitlines()
    for key, what in (("webhook", "not an http(s) URL"), ("pager", "no field 'pager'"), ("on", "unknown event")):
        line = next(i for i, t in enumerate(lines, 1) if t.startswith(key))
        assert f"{line}: " in text and what in text, text
    email_bad = '\n[notify]\nemail = { host = "h", from = "a@b", to = "c@d", tls = true }\n'
    _protocol, problems = parse_text(protocol_text(email_bad + STEPS))
    assert any("no field 'tls'" in p.message and p.line > 1 for p in problems)
    good, problems = parse_text(protocol_text(_notify_table(25, 80) + STEPS))
    assert not problems and good.notify.email["port"] == 25 and good.notify.on == ("alarm", "approval")
