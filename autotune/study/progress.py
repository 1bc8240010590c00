"""Progress display for long studies: a rich bar plus the running best and its CI."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StudyProgress:
    """Shows phase, trial count and the best candidate so far."""

    def __init__(self, *, total: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.fields[best]}"), console=self.console,
                                  transient=False)
        self._task = self._progress.add_task("preflight", total=total, best="")

    def __enter__(self) -> StudyProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def advance(self, best: str | None = None) -> None:
        self._progress.advance(self._task)
        if best is not None:
            self._progress.update(self._task, best=best)
        if not self.console.is_terminal:  # logs and CI get a line per trial instead of a bar
            task = self._progress.tasks[0]
            self.console.print(f"{task.description} {task.completed:.0f}/{task.total:.0f} "
                               f"{task.fields['best']}")

    def log(self, text: str) -> None:
        self._progress.console.print(text)
