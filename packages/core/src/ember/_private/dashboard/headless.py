"""A headless Chromium driven over the Chrome DevTools protocol: load the dashboard,
wait for what it shows, take a screenshot.

For the dashboard's browser test (tests/core/test_dashboard_browser.py) and
tools/dashboard_screenshot.py; not used by the dashboard itself. Needs a
``chromium`` binary (Debian: ``apt-get install chromium``) and the
``websocket-client`` package (in the test environment). The browser runs in a
process group of its own with a throwaway profile, and ``close()`` stops the
whole group and removes the profile.

>>> with HeadlessChromium() as browser:
...     browser.navigate(f"http://127.0.0.1:8265/?token={token}")
...     browser.wait_for("document.querySelector('tr.actor') !== null")
...     png = browser.screenshot("/tmp/dashboard.png")
"""
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) binary on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def profile_processes(profile: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line names ``profile``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if profile.encode() not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except (OSError, IndexError):
            continue
        out.append(int(entry))
    return out


class CdpError(RuntimeError):
    """The browser answered a DevTools command with an error, or did not start."""


class HeadlessChromium:
    """One headless browser with one page, driven over the DevTools protocol."""

    def __init__(self, binary: str | None = None, width: int = 1440, height: int = 900,
                 timeout: float = 30.0) -> None:
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError("no chromium binary on PATH: install it (Debian: "
                                    "apt-get install chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen | None = None
        self._ws: Any = None
        self._profile = ""

    # ------------------------------------------------------------ life cycle
    def start(self) -> "HeadlessChromium":
        import websocket  # websocket-client
        assert self.binary is not None
        self._profile = tempfile.mkdtemp(prefix="ember-chromium-")
        log = open(os.path.join(self._profile, "chromium.log"), "wb")
        argv = [self.binary, "--headless=new", "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}", "--no-first-run",
                "--no-default-browser-check", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--mute-audio", "--hide-scrollbars", "--disable-breakpad",
                "--disable-crash-reporter", f"--window-size={self.width},{self.height}",
                "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")     # Chromium refuses to run as root otherwise
        # Debian's build always starts crash handlers (in sessions of their own):
        # their database goes in the profile too, which is how close() finds them.
        env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(self._profile, "config"),
                   XDG_CACHE_HOME=os.path.join(self._profile, "cache"))
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, start_new_session=True, env=env)
        finally:
            log.close()
        try:
            port = self._devtools_port()
            target = self._page_target(port)
            self._ws = websocket.create_connection(target, timeout=self.timeout,
                                                   suppress_origin=True)
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=self.width,
                      height=self.height, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise
        return self

    def _devtools_port(self) -> int:
        """Chromium writes the port it picked (--remote-debugging-port=0) to its profile."""
        path = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise CdpError(f"chromium exited with code {self._proc.returncode} at start: "
                               f"{self._log_tail()}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(path) as f:
                    return int(f.read().split()[0])
            time.sleep(0.1)
        raise CdpError(f"chromium did not open its DevTools port within {self.timeout:.0f}s: "
                       f"{self._log_tail()}")

    def _page_target(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                        timeout=self.timeout) as reply:
                targets = json.loads(reply.read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            if time.monotonic() > deadline:
                raise CdpError("chromium has no page to drive")
            time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self._profile, "chromium.log"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop the browser (its whole process group) and remove its profile."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            # Helpers (renderer, GPU, zygote) share the group: make sure none is left.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._profile:
            for pid in profile_processes(self._profile):    # crash handlers
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> "HeadlessChromium":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ protocol
    def send(self, method: str, **params: Any) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        if self._ws is None:
            raise CdpError("the browser is not started")
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") != msg_id:
                continue
            if "error" in reply:
                raise CdpError(f"{method}: {reply['error'].get('message', reply['error'])}")
            return reply.get("result", {})

    def navigate(self, url: str) -> None:
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"loading {url} failed: {result['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if result.get("exceptionDetails"):
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"evaluating {expression!r} raised: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0, interval: float = 0.2) -> Any:
        """Poll a JavaScript expression until it is truthy; its value. TimeoutError
        (with the page's text, to see what it showed instead) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                shown = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise TimeoutError(f"the page never satisfied {expression!r} within "
                                   f"{timeout:.0f}s; it shows:\n{shown[:3000]}")
            time.sleep(interval)

    def screenshot(self, path: str | None = None, full_page: bool = True) -> bytes:
        """A PNG of the page (all of it with ``full_page``); written to ``path`` if given."""
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
            height = max(self.height, min(int(size.get("height", self.height)), 8000))
            self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=height,
                      deviceScaleFactor=1, mobile=False)
        try:
            data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        finally:
            if full_page:
                self.send("Emulation.setDeviceMetricsOverride", width=self.width,
                          height=self.height, deviceScaleFactor=1, mobile=False)
        if path:
            with open(path, "wb") as f:
                f.write(data)
        return data
