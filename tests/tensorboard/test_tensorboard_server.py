"""Runs compared in TensorBoard itself: a real ``tensorboard --logdir`` server, read through its
HTTP data API (the scalars and hparams plugins), shows every run as one HParams row with its
configuration and the last value of its scalars, also a run that crashed and was resumed."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

SCRIPT = textwrap.dedent("""
    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin


    class Train(TensorboardMixin, BaseExperiment):
        DEFAULT_DISPATCH = "train"

        def __init__(self):
            super().__init__()
            self.auto_setup()

        def train(self):
            while self.step < 20:
                self.log_scalar("train/loss", self.get("lr") * 100.0 / (self.step + 1))
                if self.step % 5 == 4:
                    self.log_scalar("val/acc", 1.0 - self.get("lr") / (self.step + 1))
                self.next_step()
                self.checkpoint(force=False)
                if self.step == self.get("crash_at"):
                    raise RuntimeError("simulated crash")


    Train().run()
""")
SERVER_START_SECONDS = 90
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _train(tmp_path, run, *args):
    completed = subprocess.run(
        [sys.executable, str(tmp_path / "train.py"), f"experiments/{run}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )
    return completed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    def __init__(self, logdir: str, log_path: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                logdir,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--reload_interval",
                "1",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._log_path = log_path

    def log_tail(self) -> str:
        with open(self._log_path) as handle:
            return handle.read()[-2000:]

    def get(self, path: str, **query: str) -> object:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict[str, object]) -> object:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_until_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self.get("/data/runs")
                return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self._log.close()


def _poll(read, ready, timeout: float = 60.0):
    """``read()`` until ``ready(result)`` (the server loads event files in cycles)."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if ready(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tb-server")
    (tmp_path / "train.py").write_text(SCRIPT)
    first = _train(
        tmp_path, "RUN-0", "--config.lr", "0.1", "--config.training.checkpoint_every", "5"
    )
    assert first.returncode == 0, first.stderr
    crashed = _train(
        tmp_path,
        "RUN-1",
        "--inherit",
        "experiments/RUN-0",
        "--config.lr",
        "0.01",
        "--config.crash_at",
        "13",
    )
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr
    resumed = _train(tmp_path, "RUN-1", "--resume", "--config.crash_at", "None")
    assert resumed.returncode == 0, resumed.stderr

    pytest.importorskip("tensorboard.main", reason="the tensorboard server is not installed")
    running = _Server(str(tmp_path / "experiments"), str(tmp_path / "tensorboard.log"))
    try:
        if not running.wait_until_up(SERVER_START_SECONDS):
            pytest.skip(
                f"tensorboard did not answer on {running.base} within "
                f"{SERVER_START_SECONDS} s:\n{running.log_tail()}"
            )
        yield running
    finally:
        running.stop()


def test_runs_and_scalars_through_the_scalars_plugin(server):
    runs = _poll(lambda: server.get("/data/runs"), lambda r: len(r) == 2)
    assert sorted(runs) == ["RUN-0/Logs", "RUN-1/Logs"]
    loss = _poll(
        lambda: server.get("/data/plugin/scalars/scalars", run="RUN-1/Logs", tag="train/loss"),
        lambda points: len(points) >= 20,
    )
    # RUN-1 crashed after step 12 (checkpoint at step 10) and resumed from step 10: the same
    # values again (same lr), each step exactly once.
    assert [step for _, step, _ in loss] == list(range(20))
    assert [value for _, _, value in loss] == [
        _float32(0.01 * 100.0 / (step + 1)) for step in range(20)
    ]


def test_every_run_is_one_hparams_row_with_its_config_and_last_metrics(server):
    experiment = _poll(
        lambda: server.post("/data/plugin/hparams/experiment", {"experimentName": ""}),
        lambda e: len(e.get("metricInfos", [])) >= 2,
    )
    hparams = {info["name"]: info for info in experiment["hparamInfos"]}
    assert {"lr", "training/checkpoint_every"} <= set(hparams)
    assert hparams["lr"]["differs"] is True
    metrics = sorted(info["name"]["tag"] for info in experiment["metricInfos"])
    assert metrics == ["train/loss", "val/acc"]

    request = {
        "experimentName": "",
        "allowedStatuses": ALL_STATUSES,
        "startIndex": 0,
        "sliceSize": 100,
        "colParams": [
            {"hparam": "lr"},
            {"metric": {"tag": "train/loss", "group": ""}},
            {"metric": {"tag": "val/acc", "group": ""}},
        ],
    }
    groups = _poll(
        lambda: server.post("/data/plugin/hparams/session_groups", request),
        lambda g: g.get("totalSize") == 2,
    )
    assert groups["totalSize"] == 2  # the resumed RUN-1 is still one row
    rows = {group["name"]: group for group in groups["sessionGroups"]}
    assert sorted(rows) == ["RUN-0/Logs", "RUN-1/Logs"]
    for run, lr in (("RUN-0/Logs", 0.1), ("RUN-1/Logs", 0.01)):
        row = rows[run]
        assert row["hparams"]["lr"] == lr
        assert row["hparams"]["training/checkpoint_every"] == 5
        assert len(row["sessions"]) == 1
        last = {
            value["name"]["tag"]: (value["trainingStep"], value["value"])
            for value in row["metricValues"]
        }
        assert last == {
            "train/loss": (19, _float32(lr * 100.0 / 20)),
            "val/acc": (19, _float32(1.0 - lr / 20)),
        }
