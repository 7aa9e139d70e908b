"""A real browser drives JupyterLab: the overview notebook runs and its widget redraws the figure.

nbval and the papermill runs execute the notebooks without a front end, so they cannot see what
a person sees: whether the notebook opens in JupyterLab, whether the widgets render there (the
JavaScript side of ipywidgets talking to the kernel), and whether moving a slider really
redraws the figure. This test does what a reader does, in Debian's Chromium driven by
Playwright:

1. a JupyterLab server of this virtualenv starts headless on a free loopback port with a
   random token, its configuration, settings and runtime files in a temporary folder (no user
   configuration, no request leaves the machine);
2. a copy of ``notebooks/00_overview.ipynb`` (outputs and saved widget state stripped, so
   everything on screen comes from this run) is opened, and "Run > Run All Cells" is clicked;
3. once every code cell has its execution count, the widget's figure is captured
   (``results/browser_before.png``), the ``gain`` slider is dragged with the mouse, and the
   test waits for the kernel to send a new figure (``results/browser_after.png``); the two
   captures must differ in their pixels;
4. no cell may show an error (traceback, ``stderr`` with an error, or a widget that failed to
   render); ``results/browser_notebook.png`` shows the whole page at the end.

On failure, ``results/browser_failure.png`` shows the page and the message ends with the tail
of the server's log. The server (and any kernel it started) is stopped in the teardown, and
the test checks that it has exited.

The browser is ``/usr/bin/chromium`` (Debian's package; ``make browser`` installs it, and
``make test`` depends on that), or the executable named by ``$NEUROMOD_CHROMIUM``. Playwright's
own browser download is never used. Without a browser the test is skipped with the way to
install one, except under ``CI=true``, where a missing browser fails it.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import nbformat
import numpy as np
import psutil
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "00_overview.ipynb"
RESULTS = REPO / "results"
CHROMIUM = Path(os.environ.get("NEUROMOD_CHROMIUM", "/usr/bin/chromium"))
# Headless, as root (no sandbox), and silent on the network: without the background-networking
# flags Chromium keeps trying to reach Google's services, which the closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1")
INSTALL_HINT = (
    "run `make browser` (Debian/Ubuntu: `apt-get install chromium`), or point $NEUROMOD_CHROMIUM "
    "at a Chromium/Chrome executable"
)

SERVER_START_S = 90  # first start of JupyterLab on a busy 2-core machine
PAGE_TIMEOUT_MS = 60_000  # one step in the page: the notebook's first load, a cell's output
RUN_ALL_TIMEOUT_MS = 120_000  # the whole notebook (a few seconds of computing, plus the kernel's start)
REDRAW_TIMEOUT_MS = 30_000  # the kernel redraws the figure after the slider moves
WIDGET = ".jp-OutputArea-output .widget-interact"  # the ipywidgets.interactive panel of the notebook
PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt"


def _missing(what: str) -> NoReturn:
    """Skip for lack of ``what`` on a user's machine; fail under CI, which must run this test."""
    message = f"{what}: {INSTALL_HINT}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the browser test must run, so this fails instead of skipping)")
    pytest.skip(message)


@dataclass
class Lab:
    """A running JupyterLab server: where to reach it, and its log."""

    url: str
    token: str
    log: Path
    process: subprocess.Popen

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        # The token is a throwaway, but keep it out of reports anyway.
        return "\n".join(text.splitlines()[-lines:]).replace(self.token, "<token>")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(directory: Path) -> None:
    """JupyterLab user settings for a quiet, deterministic page.

    No news or update checks (they would fetch from the internet, and their toast could cover
    the notebook), and every cell attached to the page (``windowingMode: none``), so that the
    checks below see all cells and outputs, not only those in view.
    """
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": (
            '{"fetchNews": "false", "checkForUpdates": false}'
        ),
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
    }
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _copy_notebook(destination: Path) -> int:
    """Copy the overview notebook without outputs, execution counts or saved widget state.

    Whatever the page shows afterwards was produced by this run. The copy lies in
    ``<tmp>/notebooks/``, so its ``results_dir = "../results"`` is ``<tmp>/results`` and the
    repository's results are left alone. Returns the number of code cells.
    """
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    destination.parent.mkdir(parents=True)
    nbformat.write(notebook, destination)
    return sum(cell.cell_type == "code" for cell in notebook.cells)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), then kill whatever is left of it."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def notebook_copy(tmp_path_factory) -> tuple[Path, int]:
    """The server's root folder, holding ``notebooks/00_overview.ipynb``, and its code cell count."""
    root = tmp_path_factory.mktemp("lab")
    return root, _copy_notebook(root / "notebooks" / NOTEBOOK.name)


@pytest.fixture(scope="module")
def lab(notebook_copy, tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab of this virtualenv, headless on a free loopback port, stopped at the end."""
    root, _ = notebook_copy
    home = tmp_path_factory.mktemp("lab-home")
    _settings(home / "lab-settings")
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures
    env.update(
        NEUROMOD_PROGRESS="0",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        # Nothing from the user's Jupyter/IPython set-up; the kernel spec still comes from
        # this virtualenv (sys.prefix/share/jupyter), and its "python" is sys.executable.
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_PREFER_ENV_PATH="1",
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
        IPYTHONDIR=str(home / "ipython"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        "--ServerApp.terminals_enabled=False",
        # No request to the internet: no news feed, no update check, no PyPI extension manager.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI and containers run as root
    log = home / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, log=log, process=process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(process)
    assert process.poll() is not None, "the JupyterLab server is still running after its teardown"


def _wait_until_up(server: Lab) -> None:
    """Poll ``/api/status`` (bypassing any proxy) until the server answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with code {server.process.returncode} while starting:\n"
                f"{server.log_tail()}"
            )
        try:
            with opener.open(f"{server.url}/api/status?token={server.token}", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, headless, with a fresh temporary profile."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing(f"no browser at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package playwright is missing (`make setup` installs the dev extras)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield instance
        finally:
            instance.close()


def _differing_fraction(first: Path, second: Path) -> float:
    """Share of pixels that differ between two images (1.0 when their sizes differ)."""
    a = np.asarray(Image.open(first).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(second).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return 1.0
    return float(np.mean(np.any(np.abs(a - b) > 8, axis=-1)))


def _error_outputs(page) -> list[str]:
    """Texts of error outputs on the page: tracebacks, stderr mentioning an error, broken widgets."""
    return page.evaluate(
        """() => {
            const found = [];
            for (const el of document.querySelectorAll(
                    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')) {
                const text = el.innerText;
                if (/Error|Traceback|Exception/.test(text)) found.push(text);
            }
            for (const el of document.querySelectorAll('.jp-OutputArea-output')) {
                const text = el.innerText;
                if (/Error displaying widget|Error rendering|model not found/i.test(text)) found.push(text);
            }
            for (const el of document.querySelectorAll('.jupyter-widgets-error-widget')) {
                found.push('widget failed to render: ' + el.innerText);
            }
            return found;
        }"""
    )


def _execution_prompts(page) -> list[str]:
    """The input prompts of the code cells: "[n]:" once a cell has run."""
    return [text.strip() for text in page.locator(PROMPTS).all_inner_texts()]


def _run_notebook_and_move_slider(page, lab: Lab, n_code_cells: int) -> None:
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
    notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
    notebook.wait_for(state="visible")
    # Run once the kernel is up, as a person would: the status bar reads "Python 3 (ipykernel) | Idle"
    # (before that: "No Kernel | Initializing", then "Connecting", "Unknown").
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\|\s*Idle\b")).wait_for(state="visible")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    # Done when every code cell shows its execution count "[n]:" (none left at "[*]:" or "[ ]:").
    try:
        page.wait_for_function(
            """([selector, count]) => {
                const prompts = [...document.querySelectorAll(selector)].map((el) => el.textContent.trim());
                return prompts.length === count && prompts.every((text) => /^\\[\\d+\\]:$/.test(text));
            }""",
            arg=[PROMPTS, n_code_cells],
            timeout=RUN_ALL_TIMEOUT_MS,
        )
    except Exception as error:
        raise AssertionError(
            f"not all {n_code_cells} code cells ran within {RUN_ALL_TIMEOUT_MS // 1000} s; "
            f"prompts: {_execution_prompts(page)}; error outputs: {_error_outputs(page)}"
        ) from error

    widget = page.locator(WIDGET)
    widget.wait_for(state="visible")
    figure = widget.locator(".widget-output img")
    figure.wait_for(state="visible")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    before_src = figure.get_attribute("src")
    before = RESULTS / "browser_before.png"
    figure.screenshot(path=str(before))

    slider = widget.locator(".widget-hslider").filter(has=page.locator(".widget-label", has_text="gain"))
    readout = slider.locator(".widget-readout")
    start_value = readout.inner_text().strip()
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-target")
    handle.scroll_into_view_if_needed()
    handle_box, track_box = handle.bounding_box(), track.bounding_box()
    assert handle_box and track_box, "the gain slider has no box on the page"
    x, y = handle_box["x"] + handle_box["width"] / 2, handle_box["y"] + handle_box["height"] / 2
    target = min(x + track_box["width"] * 0.3, track_box["x"] + track_box["width"] - 2)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(target, y, steps=10)
    page.mouse.up()  # continuous_update=False: the kernel redraws on release
    assert readout.inner_text().strip() != start_value, "dragging the gain slider did not move it"

    page.wait_for_function(
        """(src) => {
            const img = document.querySelector('.widget-interact .widget-output img');
            return img !== null && img.getAttribute('src') !== src && img.complete && img.naturalWidth > 0;
        }""",
        arg=before_src,
        timeout=REDRAW_TIMEOUT_MS,
    )
    after = RESULTS / "browser_after.png"
    figure.screenshot(path=str(after))
    changed = _differing_fraction(before, after)
    assert changed > 0.001, (
        f"the figure did not change when the slider moved ({changed:.4%} of pixels differ)"
    )

    errors = _error_outputs(page)
    assert not errors, "error output in the notebook:\n" + "\n---\n".join(errors)
    page.screenshot(path=str(RESULTS / "browser_notebook.png"), full_page=True)


def test_overview_notebook_runs_and_slider_redraws_figure(browser, lab, notebook_copy):
    """Run the overview notebook in JupyterLab, drag the gain slider: the figure must change, no error."""
    _, n_code_cells = notebook_copy
    RESULTS.mkdir(exist_ok=True)
    for stale in RESULTS.glob("browser_*.png"):
        stale.unlink()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        _run_notebook_and_move_slider(page, lab, n_code_cells)
    except Exception as error:
        page.screenshot(path=str(RESULTS / "browser_failure.png"))
        raise AssertionError(
            f"{error}\n\nscreenshot: results/browser_failure.png\n"
            f"uncaught page errors: {page_errors or 'none'}\n"
            f"--- JupyterLab log (last lines) ---\n{lab.log_tail()}"
        ) from error
    finally:
        page.close()
