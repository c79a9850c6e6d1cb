"""Screenshots of TensorBoard for the example's two runs: the HParams table and the scalars.

Runs the main job (``examples/run_example.py``: RUN-0, then RUN-1 with another learning rate)
in a scratch directory, starts ``tensorboard --logdir experiments`` on a free localhost port,
waits until both runs and their HParams rows are loaded, and takes one screenshot per
dashboard with headless Chromium. The PNGs go to ``docs/images/`` (``--out``).

Needs TensorBoard (in the dev and hatch environments) and Chromium (Debian's ``chromium``
package). Nothing is installed unless ``--install-chromium`` is given, which runs
``apt-get install -y chromium`` (as root).

Usage, from the repository root::

    python examples/screenshot_tensorboard.py [--out docs/images] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: file name -> (TensorBoard URL fragment, window size)
SHOTS = {
    "tensorboard_hparams.png": ("#hparams", (1500, 320)),
    "tensorboard_scalars.png": ("#scalars", (1200, 500)),
}


def find_chromium(install: bool) -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if install:
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True)
        found = shutil.which("chromium")
        if found:
            return found
    raise SystemExit(
        "headless Chromium is needed for the screenshots and none of "
        f"{', '.join(CHROMIUM_NAMES)} is on PATH: apt-get install -y chromium "
        "(or rerun with --install-chromium)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _json(url: str, body: dict[str, object] | None = None) -> Any:  # parsed JSON
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_runs(base: str, server: subprocess.Popen, runs: int, timeout: float) -> None:
    """Until TensorBoard lists ``runs`` runs and as many HParams rows with metrics."""
    request = {
        "experimentName": "",
        "startIndex": 0,
        "sliceSize": 100,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tensorboard exited with code {server.returncode}")
        try:
            groups = _json(base + "/data/plugin/hparams/session_groups", request)
            if (
                len(_json(base + "/data/runs")) == runs
                and len(groups.get("sessionGroups", [])) == runs
                and all(group["metricValues"] for group in groups["sessionGroups"])
            ):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"tensorboard at {base} did not show {runs} runs within {timeout} s")


def screenshot(chromium: str, url: str, path: str, size: tuple[int, int], budget_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={path}",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    try:  # a palette PNG is a fraction of the size (TensorBoard's UI has few colours)
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    parser.add_argument(
        "--keep",
        help="run the example in this directory and keep it (default: a temporary directory)",
    )
    parser.add_argument(
        "--install-chromium",
        action="store_true",
        help="apt-get install -y chromium when no Chromium is found",
    )
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=20000,
        help="Chromium's virtual-time budget for the page to render",
    )
    args = parser.parse_args()

    chromium = find_chromium(args.install_chromium)
    workdir = args.keep or tempfile.mkdtemp(prefix="speedrun-screenshots-")
    os.makedirs(workdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "run_example.py")], cwd=workdir, check=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(os.path.join(workdir, "tensorboard.log"), "w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                "experiments",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_runs(base, server, runs=2, timeout=120)
            for name, (fragment, size) in SHOTS.items():
                path = os.path.join(args.out, name)
                screenshot(chromium, f"{base}/{fragment}", path, size, args.budget_ms)
                print(f"{path}: {os.path.getsize(path) // 1024} KiB")
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
