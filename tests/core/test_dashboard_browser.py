"""The dashboard page in a real headless browser (Chromium over the DevTools protocol).

The test starts a cluster with its dashboard, leaves an actor running and a
task finished, opens the page with the cluster token, waits until the page
(its script, polling the JSON API) shows both, and takes a screenshot. It is
skipped where no Chromium is installed (Debian: ``apt-get install chromium``;
``.ci/run`` installs it when it can).
"""
from __future__ import annotations

import os
import struct

import pytest

import ember
from ember._private.dashboard.headless import (
    HeadlessChromium,
    find_chromium,
    profile_processes,
)
from ember.testing import pid_alive, wait_for_condition

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium binary on PATH: the dashboard's browser test needs one "
           "(Debian: apt-get install chromium)")

ACTOR = ("document.querySelector('#actors-body tr.actor[data-class=\"Greeter\"]"
         "[data-state=\"ALIVE\"] .state')?.textContent === 'ALIVE'")
TASK = ("[...document.querySelectorAll('#tasks-body tr.task[data-name=\"slow_square\"]')]"
        ".some(r => r.querySelector('.state').textContent === 'FINISHED')")


def test_page_shows_a_running_actor_and_a_finished_task(fresh, tmp_path):
    pytest.importorskip("uvicorn")
    from ember._private import api
    ctx = fresh.init(num_cpus=2, include_dashboard=True, dashboard_port=0)
    token = api._cluster.token

    @ember.remote
    class Greeter:
        def greet(self, name):
            return f"hello {name}"

    @ember.remote
    def slow_square(x):
        import time
        time.sleep(0.2)
        return x * x

    greeter = Greeter.remote()
    assert ember.get(greeter.greet.remote("browser")) == "hello browser"
    assert ember.get(slow_square.remote(9)) == 81

    browser = HeadlessChromium(width=1440, height=900)
    with browser:
        profile = browser._profile
        browser_pid = browser.pid
        browser.navigate(f"http://{ctx.dashboard_url}/?token={token}")
        browser.wait_for(ACTOR, timeout=60)
        browser.wait_for(TASK, timeout=60)
        # The token went into an HttpOnly cookie and left the address bar.
        assert "token=" not in browser.evaluate("location.href")
        assert "ember_token" not in browser.evaluate("document.cookie")
        # The overview drew the node with its resource bars, and the page is live.
        wait_for_condition(lambda: browser.evaluate(
            "document.querySelectorAll('.node-card .bar-row').length") >= 3, timeout=30)
        assert browser.evaluate("document.getElementById('status').dataset.state") == "ok"
        polls = int(browser.evaluate("document.body.dataset.polls"))
        wait_for_condition(lambda: int(browser.evaluate("document.body.dataset.polls"))
                           > polls + 1, timeout=30, message="the page stopped refreshing")
        png = browser.screenshot(str(tmp_path / "dashboard.png"))
    # Every browser process is gone with it.
    assert not pid_alive(browser_pid)
    wait_for_condition(lambda: profile_processes(profile) == [], timeout=10)
    assert not os.path.exists(profile)

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1440 and height >= 900
    assert len(png) > 30_000, "a screenshot this small is a blank page"
    assert (tmp_path / "dashboard.png").read_bytes() == png


def test_page_without_the_token_is_refused(fresh):
    pytest.importorskip("uvicorn")
    ctx = fresh.init(num_cpus=1, include_dashboard=True, dashboard_port=0)
    with HeadlessChromium() as browser:
        profile = browser._profile
        browser.navigate(f"http://{ctx.dashboard_url}/")
        text = browser.wait_for("document.body && document.body.innerText", timeout=30)
        assert "401 Unauthorized" in text
        assert browser.evaluate("document.getElementById('nodes')") is None
    wait_for_condition(lambda: profile_processes(profile) == [], timeout=10)
