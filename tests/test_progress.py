"""What a run prints while it works: ``swarm_memo.execution.progress``."""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import types
import warnings

import pytest

from swarm_memo.execution.progress import Progress

LINE = re.compile(
    r"swarm-memo: \d+/\d+ points \(\d+%\), \d+ chunks? written, \d+:\d\d elapsed"
    r"(, ~\d+:\d\d left)?(, waiting for \d+ chunks? claimed by other processes)?"
)


class FakeStream(io.StringIO):
    """A stderr that is, or is not, a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(verbose=1, cached=0, expected=100, *, tty=False, interval=30.0):
    stream, clock = FakeStream(tty), FakeClock()
    bar = Progress(verbose, cached, expected, stream=stream, interval=interval, clock=clock)
    return bar, stream, clock


# ------------------------------------------------------------------ log files


def test_log_file_gets_a_status_line_per_interval_and_no_carriage_returns():
    bar, stream, clock = progress(expected=100, interval=30)
    with bar:
        for _ in range(10):  # 10 points, one every 10 s: lines at 30, 60 and 90 s
            clock.now += 10
            bar.advance(10)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 4  # three periodic lines and the last one
    assert all(LINE.fullmatch(line) for line in lines), lines
    assert lines[0].startswith("swarm-memo: 30/100 points (30%)")
    assert lines[-1] == "swarm-memo: 100/100 points (100%), 0 chunks written, 1:40 elapsed"


def test_no_status_line_before_the_interval_has_passed():
    bar, stream, _ = progress(interval=30)
    with bar:
        for _ in range(100):
            bar.advance(1)
    assert stream.getvalue().splitlines() == [
        "swarm-memo: 100/100 points (100%), 0 chunks written, 0:00 elapsed"
    ]


def test_status_line_gives_points_chunks_elapsed_and_time_left():
    bar, stream, clock = progress(cached=200, expected=4800, interval=60)
    with bar:
        for _ in range(3):
            bar.chunk_written(0, 300, "name")
        clock.now += 62
        bar.advance(1000)
        # 1000 points took 62 s: 3800 more take about 235 s
        assert bar.status_line() == (
            "1200/5000 points (24%), 3 chunks written, 1:02 elapsed, ~3:55 left"
        )
        assert stream.getvalue() == "swarm-memo: " + bar.status_line() + "\n"


def test_status_line_says_how_many_chunks_are_awaited():
    bar, stream, clock = progress(interval=0)
    with bar:
        bar.advance(10)
        clock.now += 1
        bar.waiting(2)
        assert bar.status_line().endswith(", waiting for 2 chunks claimed by other processes")
        bar.waiting(0)
        assert "waiting" not in bar.status_line()
    lines = stream.getvalue().splitlines()
    assert "waiting for 2 chunks claimed by other processes" in lines[1]
    assert "\r" not in stream.getvalue()


def test_long_runs_show_hours():
    bar, _, clock = progress(expected=10)
    clock.now += 3723
    bar.advance(5)
    assert "1:02:03 elapsed, ~1:02:03 left" in bar.status_line()


def test_a_run_logged_to_a_file_has_no_carriage_returns(tmp_path):
    code = (
        "from swarm_memo import SwarmMemo\n"
        f"memo = SwarmMemo({str(tmp_path / 'cache')!r}, {{'x': 5}}, 5, max_workers=1,\n"
        "                 exec_fn=lambda params, point: point[0], verbose=2)\n"
        "memo.run({}, {'x': list(range(20))})\n"
    )
    log = tmp_path / "job.log"
    with log.open("wb") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, check=True, timeout=120)
    data = log.read_bytes()  # bytes: read_text() would turn "\r" into "\n"
    assert b"\r" not in data
    assert b"swarm-memo: 20/20 points (100%), " in data


# ------------------------------------------------------------------ verbosity


def test_verbose_0_prints_nothing_even_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with Progress(0, 0, 100, interval=0) as bar:
        bar.advance(50)
        bar.waiting(3)
        bar.chunk_written(0, 50, "abc")
        bar.skip(10)
        bar.adjust_total(-5)
    bar.finish("5 points executed")
    assert capsys.readouterr() == ("", "")


def test_verbose_2_prints_one_line_per_chunk_written():
    bar, stream, _ = progress(verbose=2, interval=1e9)
    with bar:
        for index in range(3):
            bar.advance(10)
            bar.chunk_written(index, 10, f"chunk-{index}")
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [f"swarm-memo: wrote chunk {i} (10 points) as chunk-{i}" for i in range(3)]
    assert lines[3].startswith("swarm-memo: 30/100 points (30%), 3 chunks written")
    assert len(lines) == 4


def test_verbose_1_prints_no_line_per_chunk():
    bar, stream, _ = progress(verbose=1, interval=1e9)
    with bar:
        bar.advance(10)
        bar.chunk_written(0, 10, "chunk-0")
    assert "wrote chunk" not in stream.getvalue()


def test_finish_prints_the_summary_after_the_last_status_line():
    bar, stream, _ = progress()
    with bar:
        bar.advance(100)
    bar.finish("100 points executed")
    bar.finish("100 points executed")  # closing twice prints the last line once
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("swarm-memo: 100/100 points (100%)")
    assert lines[1:] == ["swarm-memo: 100 points executed"] * 2


def test_nothing_but_the_summary_when_nothing_executes():
    bar, stream, _ = progress(cached=50, expected=0, tty=True, interval=0)
    with bar:
        bar.waiting(0)
    bar.finish("all 50 points cached")
    assert stream.getvalue() == "swarm-memo: all 50 points cached\n"


# ------------------------------------------------------------------ terminals and notebooks


def test_terminal_gets_a_bar_with_the_awaited_chunks():
    bar, stream, _ = progress(verbose=2, cached=20, expected=80, tty=True)
    with bar:
        bar.advance(40)
        bar.waiting(2)
        bar.chunk_written(0, 40, "chunk-0")
    bar.finish("done")
    text = stream.getvalue()
    assert "\r" in text  # a bar redraws its line
    assert "60/100" in text
    assert "waiting for 2 chunks claimed by other processes" in text
    assert "swarm-memo: wrote chunk 0 (40 points) as chunk-0\n" in text
    assert text.endswith("swarm-memo: done\n")
    assert not LINE.search(text)  # no status lines on a terminal


@pytest.fixture
def fake_notebook(monkeypatch):
    """Look like a Jupyter kernel without ipywidgets, and forget tqdm's notebook modules
    so that importing ``tqdm.auto`` would decide (and warn) again."""
    tqdm_modules = ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook")
    saved = {name: sys.modules.pop(name) for name in tqdm_modules if name in sys.modules}

    class ZMQInteractiveShell:
        config: dict[str, object] = {"IPKernelApp": {}}  # noqa: RUF012

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    yield
    for name in tqdm_modules:  # drop what the fake notebook imported, restore the rest
        sys.modules.pop(name, None)
    sys.modules.update(saved)


@pytest.mark.usefixtures("fake_notebook")
def test_simulated_notebook_without_ipywidgets_makes_tqdm_auto_warn():
    """The control for the next test: the simulation is one tqdm.auto warns in."""
    from tqdm import TqdmWarning

    with pytest.warns(TqdmWarning, match="IProgress not found"):
        importlib.import_module("tqdm.auto")


@pytest.mark.usefixtures("fake_notebook")
def test_notebook_without_ipywidgets_gets_a_text_bar_and_no_warning():
    stream = FakeStream(tty=False)  # a kernel's stderr is not a terminal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Progress(1, 0, 10, stream=stream, interval=0) as bar:
            bar.advance(4)
            bar.waiting(1)
        bar.finish("done")
    text = stream.getvalue()
    assert "4/10" in text
    assert "\r" in text  # the text bar, which a notebook redraws in place
    assert not LINE.search(text)
