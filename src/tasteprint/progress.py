"""Progress for long work: rich's bar on a terminal, and plain lines on stderr when stderr is not a
terminal (a log or a CI job), where rich draws nothing."""

from __future__ import annotations

import sys

from rich.progress import Progress, TaskID

LOG_STEPS = 10  # a logged task gets a line at its start and at every tenth of its total


class LoggedProgress(Progress):
    """`rich.progress.Progress`, transient, which also writes a line per task to stderr when that is not
    a terminal: when the task is added, when its description changes, and each time it passes another
    tenth of its total ("profiling: 30/100")."""

    def __init__(self, *columns, disable: bool = False, **options):
        super().__init__(*columns, disable=disable, transient=True, **options)
        self.logs = not disable and not sys.stderr.isatty()
        self._logged_steps: dict[TaskID, int] = {}

    def add_task(self, description: str, *args, **options) -> TaskID:
        task_id = super().add_task(description, *args, **options)
        self._log(task_id)
        return task_id

    def update(self, task_id: TaskID, *, description: str | None = None, **options) -> None:
        super().update(task_id, description=description, **options)
        if description is not None:
            self._log(task_id)
        else:
            self._log_step(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log_step(task_id)

    def _log_step(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if task.total:
            step = int(LOG_STEPS * task.completed / task.total)
            if step > self._logged_steps.get(task_id, 0):
                self._logged_steps[task_id] = step
                self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        if self.logs:
            task = self._tasks[task_id]
            done = f": {task.completed:g}/{task.total:g}" if task.total else ""
            print(f"{task.description}{done}", file=sys.stderr, flush=True)
