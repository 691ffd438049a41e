"""A reader's rerun, as on Binder: a chapter's parameter panel in a real JupyterLab, driven in headless Chromium.

A JupyterLab server of this environment (its ``python3`` kernel) runs on 127.0.0.1 over a temporary copy of
the book's table of contents and the overview chapter, with its own data folder. The browser opens the
notebook, runs only the panel cell, presses **Run** at the defaults, changes ``image_size`` in its field and
presses **Run** again. It checks that papermill's progress bar shows while the chapter runs, then that the
headline table shows the new run's photograph spectral slope beside the previous run's, that both are the
numbers the runs saved and that they differ, that the run's figure loads, and that no traceback shows.

Every step leaves a screenshot in the test's temporary folder; a failure names the step, what did not appear
and the screenshot. It drives the system's Chromium, as tests/test_browser.py does, and skips where there is
none.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO
from test_browser import CHROMIUM, CHROMIUM_ARGS, NO_CHROMIUM, VIEWPORT

from neuroalign_utils import chapters, report, storage
from neuroalign_utils.panel import headline_class

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]

#: The cheapest chapter whose headline follows a parameter: its photographs' spectral slope changes with the
#: size they are resized to (1.36 at the default 128 px, 1.33 at 48 px).
CHAPTER = "overview"
CHANGED = ("image_size", 48)
HEADLINE_ROW = "photograph_median_spectral_slope"

SERVER_START_S = 90  # JupyterLab answers in a few seconds on an idle machine
KERNEL_START_S = 90
CHAPTER_RUN_S = 180  # the overview chapter runs in about 10 s at its defaults


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    data_dir: Path
    log: Path

    def api(self, path: str):
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 over a copy of the chapter, as a reader's first visit; stopped afterwards."""
    chapter = chapters.get_chapter(CHAPTER, REPO)
    root = tmp_path / "book"  # as a clone: the kernel finds the book from the notebook's folder
    (root / "notebooks").mkdir(parents=True)
    shutil.copy2(REPO / "_toc.yml", root)
    for path in (chapter.path, chapter.ipynb_path):
        shutil.copy2(path, root / "notebooks")
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no question about Jupyter news over the panel, no update check (offline)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(
        os.environ,
        NEUROALIGN_DATA=str(tmp_path / "data"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),  # none of this machine's Jupyter settings
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
    )
    env.pop(chapters.ENV_INTERACTIVE, None)  # a reader's kernel: the panel is live
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable,  # its kernelspec `python3` runs this same interpreter, where the package is installed
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # CI containers run as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    with open(log, "w") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started = Lab(f"http://127.0.0.1:{port}", token, tmp_path / "data", log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {server.returncode}:\n{started.log_tail()}", pytrace=False)
            with contextlib.suppress(OSError):
                started.api("/api/status")
                break
            if time.monotonic() > deadline:
                message = f"JupyterLab did not answer within {SERVER_START_S} s:\n{started.log_tail()}"
                pytest.fail(message, pytrace=False)
            time.sleep(0.5)
        yield started
    finally:
        server.terminate()  # the server shuts its kernels down
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # whatever it left behind in the session it started
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


class Steps:
    """Names the step under way; a screenshot per step, and one with the failure message when a step fails."""

    def __init__(self, page, folder: Path, problems: list[str]):
        self.page, self.folder, self.problems, self.count = page, folder, problems, 0

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}_{name}.png"
        self.page.screenshot(path=path)
        return path

    @contextlib.contextmanager
    def step(self, name: str, what: str):
        """Run the step; on a timeout or an assertion, fail saying ``what`` did not happen."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            yield
        except (PlaywrightError, AssertionError) as err:
            shot = self.shot(f"{name}_failed")
            seen = "\n".join(self.problems[:10]) or "none"
            pytest.fail(
                f"{what}: {str(err).splitlines()[0] if str(err) else type(err).__name__}\n"
                f"screenshot: {shot}\nconsole errors and page exceptions so far:\n{seen}",
                pytrace=False,
            )
        self.shot(name)


def _wait_for_idle_kernel(page, lab: Lab, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    states = []
    while time.monotonic() < deadline:
        states = [kernel["execution_state"] for kernel in lab.api("/api/kernels")]
        if states == ["idle"]:
            return
        page.wait_for_timeout(500)  # not time.sleep: the page's requests pass through this process's route
    raise AssertionError(f"kernels' states after {timeout} s: {states or 'no kernel'}")


HEADLINE_JS = """
(table) => {
  const columns = [...table.querySelectorAll('thead tr:first-child th')].slice(1).map((th) => th.textContent.trim());
  const rows = {};
  table.querySelectorAll('tbody tr').forEach((tr) => {
    const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent.trim());
    rows[tr.querySelector('th').textContent.trim()] = Object.fromEntries(columns.map((c, i) => [c, cells[i]]));
  });
  return rows;
}
"""


def _run_and_wait(cell, steps: Steps, name: str, command: str) -> dict:
    """Press Run; wait for the progress bar, then for the status of the finished run; return the headline table."""
    status = cell.locator(".widget-html-content").filter(has_text="the same as")
    with steps.step(f"{name}_progress", f"no progress bar while `{command}` runs"):
        cell.locator("button.widget-button", has_text="Run").click()
        cell.locator(".widget-output .widget-hprogress").wait_for(timeout=CHAPTER_RUN_S * 1000)
    finished = status.filter(has_text="Ran in").filter(has_text=command)
    with steps.step(f"{name}_headline", f"the panel did not show `{command}` as run"):
        deadline = time.monotonic() + CHAPTER_RUN_S
        while not finished.count():
            refused = cell.locator(".widget-html-content").filter(has_text="Not run")
            assert not refused.count(), refused.first.inner_text()
            assert time.monotonic() < deadline, f"status after {CHAPTER_RUN_S} s: {status.all_inner_texts()}"
            cell.page.wait_for_timeout(500)
        finished.scroll_into_view_if_needed()
        table = cell.locator(".widget-html-content table")
        table.wait_for(timeout=10_000)
    return table.evaluate(HEADLINE_JS)


def _open_browser(playwright, lab: Lab, problems: list[str]):
    """Headless Chromium with one page, offline as this machine is (only the server answers); errors are recorded."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")

    def offline(route):
        if route.request.url.startswith(lab.url):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    def on_console(msg):
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    context.route("**/*", offline)
    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page exception: {exc}"))
    return browser, page


def test_panel_reruns_the_chapter_in_jupyterlab(lab, tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:  # the test extra was not installed: a broken set-up, not a skip
        pytest.fail(f"playwright is not importable ({err}); run `make env` (it installs the test extra).")
    name, value = CHANGED
    chapter = chapters.get_chapter(CHAPTER, REPO)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser, page = _open_browser(playwright, lab, problems)
        steps = Steps(page, tmp_path, problems)
        try:
            with steps.step("notebook", f"JupyterLab did not open notebooks/{chapter.ipynb_path.name} with a kernel"):
                page.goto(f"{lab.url}/lab/tree/notebooks/{chapter.ipynb_path.name}?token={lab.token}")
                page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(timeout=SERVER_START_S * 1000)
                _wait_for_idle_kernel(page, lab, KERNEL_START_S)
                page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()

            cell = page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=f'parameter_panel("{CHAPTER}")')
            with steps.step("panel", "the parameter panel did not appear under its cell"):
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")  # this cell only: the panel needs nothing from the cells above
                cell.locator("button.widget-button", has_text="Run").wait_for(timeout=KERNEL_START_S * 1000)
                control = cell.get_by_label(name, exact=True)
                assert control.input_value() == str(chapter.parameters[name].default), f"the {name} field"

            default_table = _run_and_wait(cell, steps, "defaults", f"neuroalign run {CHAPTER} --force")
            default_run = storage.latest_run(CHAPTER, data_dir=lab.data_dir)

            with steps.step("changed", f"the {name} field did not take {value}"):
                control.fill(str(value))
                control.press("Tab")  # the field sends its value to the kernel when it loses focus
            command = f"neuroalign run {CHAPTER} -p {name} {value} --force"
            changed_table = _run_and_wait(cell, steps, "changed", command)
            changed_run = storage.latest_run(CHAPTER, data_dir=lab.data_dir)

            with steps.step("figures", "the run's figure did not load in the panel"):
                images = cell.locator(".widget-image")
                assert images.count() >= 1, "no image under the headline table"
                images.first.scroll_into_view_if_needed()
                widths = images.evaluate_all("(imgs) => imgs.map((img) => img.naturalWidth)")
                assert all(widths), f"image widths {widths}"
            output = cell.locator(".jp-Cell-outputArea")
            output_text = output.inner_text()
            stderr = output.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
        finally:
            browser.close()

    assert "Traceback" not in output_text and not stderr, f"the panel cell shows an error:\n{output_text}\n{stderr}"
    assert default_run.parameters[name] != value and changed_run.parameters[name] == value
    saved = {
        label: report.format_number(getattr(headline_class(CHAPTER).load(run.path), HEADLINE_ROW))
        for label, run in (("defaults", default_run), ("changed", changed_run))
    }
    assert default_table[HEADLINE_ROW] == {"this run": saved["defaults"]}, (
        f"after the run at the defaults the panel shows {default_table}; the run saved {saved['defaults']}"
    )
    assert changed_table[HEADLINE_ROW] == {"this run": saved["changed"], "previous run": saved["defaults"]}, (
        f"after the run with {name}={value} the panel shows {changed_table}; the runs saved {saved}"
    )
    assert saved["changed"] != saved["defaults"], (
        f"{HEADLINE_ROW} reads {saved['defaults']} at {name}={value} as at the default: change another parameter"
    )
    assert not problems, "JupyterLab logged errors:\n" + "\n".join(problems)
