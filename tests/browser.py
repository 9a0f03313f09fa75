"""A tiny headless-Chromium driver for the report tests: the DevTools protocol over a pipe, standard library only.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands (JSON, each
ended by a NUL byte) from file descriptor 3 and writes replies and events to 4, so no
port, websocket or driver binary is needed.  :func:`open_page` loads a page in a fresh
profile and records its console messages, uncaught exceptions, log entries and network
requests.

Also a command for documentation screenshots:
``python tests/browser.py OUT/report.html shot.png --width 1280`` (``--width 390`` for a phone).
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe")


def find_chromium() -> str | None:
    """$ROBUSTPATH_CHROMIUM, else the first Chromium or Chrome on PATH; None when there is none."""
    chosen = os.environ.get("ROBUSTPATH_CHROMIUM")
    if chosen:
        return chosen if shutil.which(chosen) else None
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


class BrowserError(RuntimeError):
    pass


class Browser:
    """One Chromium process and its protocol pipe; ``events``: every event received, in order."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def wire_pipe() -> None:  # in the child: the protocol's fds 3 (commands) and 4 (replies), inheritable
            import fcntl

            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 5) for fd in (commands_read, replies_write)]  # free 3 and 4 first
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipe, close_fds=False,
        )
        os.close(commands_read)
        os.close(replies_write)
        self.timeout = timeout
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and wait for its reply (events that arrive meanwhile go to ``events``)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str, session: str | None = None) -> dict:
        """The first event ``method`` (of ``session``) not seen before, waiting for it."""
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and (session is None or event.get("sessionId") == session):
                    event["_taken"] = True
                    return event
            seen = len(self.events)
            self._receive()

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed the protocol pipe (exit code {self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
        return message

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


class Page:
    """A loaded page: ``evaluate`` runs JavaScript, ``screenshot`` captures it whole."""

    def __init__(self, browser: Browser, session: str, url: str) -> None:
        self.browser, self.session, self.url = browser, session, url

    def evaluate(self, expression: str):
        result = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                        "awaitPromise": True}, self.session)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"{expression[:60]}…: {details.get('exception', {}).get('description', details.get('text'))}")
        return result["result"].get("value")

    def _events(self, method: str) -> list[dict]:
        return [e["params"] for e in self.browser.events if e.get("method") == method and e.get("sessionId") == self.session]

    def console_errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and error log entries (CSP violations, failed loads)."""
        found = [f"console.{e['type']}: {' '.join(str(a.get('value', a.get('description', ''))) for a in e['args'])}"
                 for e in self._events("Runtime.consoleAPICalled") if e["type"] in ("error", "assert", "warning")]
        found += [f"exception: {e['exceptionDetails'].get('text')} {e['exceptionDetails'].get('exception', {}).get('description', '')}"
                  for e in self._events("Runtime.exceptionThrown")]
        found += [f"log {e['entry']['source']}: {e['entry']['text']}" for e in self._events("Log.entryAdded")
                  if e["entry"]["level"] in ("error", "warning")]
        return found

    def requests(self) -> list[str]:
        """URLs of every request the page made (data: URLs included)."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def screenshot(self, path: Path) -> Path:
        """The whole page (not just the viewport) as PNG."""
        metrics = self.browser.send("Page.getLayoutMetrics", session=self.session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                            "clip": clip}, self.session)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)


@contextmanager
def open_page(path: Path, *, width: int = 1280, height: int = 900, mobile: bool = False, executable: str | None = None):
    """Load ``path`` in a fresh headless Chromium at ``width`` × ``height`` CSS px → Page (closed on exit)."""
    executable = executable or find_chromium()
    if executable is None:
        raise BrowserError("no Chromium found (apt-get install chromium, or set ROBUSTPATH_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="robustpath-chromium-") as profile:
        browser = Browser(executable, Path(profile))
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.send(f"{domain}.enable", session=session)
            browser.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "mobile": mobile,
                                                                "deviceScaleFactor": 1}, session)
            url = Path(path).resolve().as_uri()
            browser.send("Page.navigate", {"url": url}, session)
            browser.wait_for("Page.loadEventFired", session)
            yield Page(browser, session, url)
        finally:
            browser.close()


EAGER_IMAGES = """Promise.all(Array.from(document.images).map(image => {
  image.loading = "eager";
  return image.src ? image.decode().then(() => true, () => false) : Promise.resolve(false);
}))"""  # load every image, lazy ones too, and wait until each is decoded → [decoded?, ...]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot a report.html in headless Chromium.")
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--open-all", action="store_true", help="open every <details> first")
    arguments = parser.parse_args()
    with open_page(arguments.page, width=arguments.width, height=arguments.height, mobile=arguments.width < 700) as page:
        if arguments.open_all:
            page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.evaluate(EAGER_IMAGES)
        page.screenshot(arguments.out)
        for problem in page.console_errors():
            print(problem)


if __name__ == "__main__":
    main()
