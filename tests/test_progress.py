"""Long work shows progress in a log too, where rich draws no bar."""

from tasteprint.progress import LoggedProgress


def test_a_log_gets_a_line_at_the_start_at_each_tenth_and_for_each_new_description(capsys):
    with LoggedProgress() as bar:  # pytest's captured stderr is not a terminal
        task = bar.add_task("profiling", total=20)
        for _ in range(20):
            bar.advance(task)
        bar.update(task, description="profiling again")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "profiling: 0/20"
    assert lines[1:11] == [f"profiling: {n}/20" for n in range(2, 21, 2)]
    assert lines[11:] == ["profiling again: 20/20"]


def test_a_disabled_progress_writes_nothing(capsys):
    with LoggedProgress(disable=True) as bar:
        for _ in bar.track(range(30), description="indexing items"):
            pass
    assert capsys.readouterr().err == ""


def test_tracking_an_iterable_logs_its_steps(capsys):
    with LoggedProgress() as bar:
        for _ in bar.track(range(5), description="indexing items"):
            pass
    assert capsys.readouterr().err.splitlines()[-1] == "indexing items: 5/5"
