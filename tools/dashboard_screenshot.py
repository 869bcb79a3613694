"""Take the screenshot of the dashboard in docs/ (docs/dashboard.png).

Starts a small two-node cluster with the dashboard, gives it something to show
(actors alive and dead, tasks finished, running and failed, a placement group,
objects in the store, a worker's log), opens the page in headless Chromium
over the DevTools protocol and saves a full-page screenshot. Everything it
starts is stopped at the end.

    .venv/bin/python tools/dashboard_screenshot.py [--out docs/dashboard.png]

Needs ``chromium`` on PATH and ``ember-core[dashboard]`` plus ``websocket-client``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import ember
from ember._private.dashboard.headless import HeadlessChromium
from ember.cluster_utils import Cluster
from ember.util.placement_group import placement_group


def populate() -> list:
    """Actors, tasks and objects for the page to show; what must stay referenced."""

    @ember.remote
    class ParameterServer:
        def __init__(self) -> None:
            self.weights = [0.0] * 1000

        def update(self, step: int) -> int:
            print(f"applied gradient step {step}")
            return step

    @ember.remote(num_cpus=0)
    class Logger:
        def log(self, line: str) -> None:
            print(line)

    @ember.remote
    def preprocess(shard: int) -> int:
        time.sleep(0.3)
        return shard

    @ember.remote
    def train_step(step: int) -> float:
        time.sleep(0.2 + 0.1 * step)
        return 1.0 / (step + 1)

    @ember.remote
    def evaluate() -> float:
        time.sleep(600)
        return 0.0

    @ember.remote(max_retries=0)
    def flaky_download(url: str) -> bytes:
        raise ConnectionError(f"could not fetch {url}")

    ps = ParameterServer.options(name="parameter_server").remote()
    logger = Logger.remote()
    ember.get([ps.update.remote(i) for i in range(3)])
    ember.get(logger.log.remote("epoch 1 started"))
    doomed = Logger.remote()
    ember.get(doomed.log.remote("short-lived"))
    time.sleep(1.5)        # its worker reports its task events about once a second
    ember.kill(doomed)
    ember.get([preprocess.remote(i) for i in range(4)])
    ember.get([train_step.remote(i) for i in range(3)])
    bad = flaky_download.remote("s3://bucket/shard-7")
    ember.wait([bad], timeout=30)
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD", name="trainers")
    ember.get(pg.ready(), timeout=60)
    running = evaluate.remote()
    blobs = [ember.put(bytes(8 << 20)) for _ in range(3)]
    return [ps, logger, running, blobs, pg, bad]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs",
                                                      "dashboard.png"))
    parser.add_argument("--width", type=int, default=1440)
    args = parser.parse_args()
    cluster = Cluster()
    try:
        head = cluster.add_node(num_cpus=4, object_store_memory=512 << 20,
                                include_dashboard=True, dashboard_port=0)
        cluster.add_node(num_cpus=2, resources={"accel": 2}, labels={"zone": "b"},
                         object_store_memory=256 << 20)
        ember.init(address=cluster.address)
        keep = populate()
        url = f"http://{head.dashboard_url}/?token={head.token}"
        with HeadlessChromium(width=args.width, height=1000) as browser:
            browser.navigate(url)
            browser.wait_for("document.querySelectorAll('#actors-body tr.actor').length >= 3",
                             timeout=60)
            browser.wait_for("document.querySelector('#tasks-body tr.task"
                             "[data-state=\"FAILED\"]') !== null", timeout=60)
            browser.wait_for("document.querySelectorAll('.node-card').length === 2",
                             timeout=60)
            # Open the parameter server's log in the Logs section.
            browser.evaluate("document.querySelector('#actors-body tr.actor"
                             "[data-class=\"ParameterServer\"] button.link').click()")
            browser.wait_for("document.getElementById('log-text').textContent"
                             ".includes('applied gradient step')", timeout=60)
            browser.evaluate("window.scrollTo(0, 0)")
            time.sleep(2.0)        # one more refresh: durations and bars settle
            png = browser.screenshot(os.path.abspath(args.out))
        print(f"wrote {os.path.abspath(args.out)} ({len(png)} bytes)")
        del keep
        return 0
    finally:
        ember.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
