"""Events whose (run, luminosityBlock, event) repeats in the input, handled as CMSSW's PoolSource
``duplicateCheckMode`` does.

Modes (the source parameter ``duplicateCheckMode``, the command-line option of the same name):

* ``checkAllFilesOpened`` (the default, as in CMSSW): an event whose ID was read before, from any input file of the
  job, is skipped: one warning at the first repeat, the count in the job's summary.
* ``checkEachFile``: the same, within each file only (a repeat across files is kept).
* ``noDuplicateCheck``: every event is processed, repeats included.
* ``failOnDuplicate`` (not in CMSSW): a repeat is an :class:`~framework.exceptions.InputError` naming both places.

Entries skipped with ``skipEvents`` are neither checked nor remembered; a skipped repeat does not count toward
``maxEvents``. Files without the ID branches (IDs made up from the entry number) are not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..exceptions import ConfigurationError, InputError, did_you_mean

log = logging.getLogger("framework.io")

CHECK_ALL = "checkAllFilesOpened"
CHECK_EACH_FILE = "checkEachFile"
NO_CHECK = "noDuplicateCheck"
FAIL = "failOnDuplicate"
MODES = (CHECK_ALL, CHECK_EACH_FILE, NO_CHECK, FAIL)
DEFAULT_MODE = CHECK_ALL


def check_mode(mode: str, where: str) -> str:
    """*mode* when it is one of :data:`MODES`, else a :class:`ConfigurationError` naming *where*, the value and the
    valid modes."""
    if mode not in MODES:
        raise ConfigurationError(
            f"{where}: duplicateCheckMode={mode!r} is not a mode.{did_you_mean(str(mode), MODES)} Valid modes: "
            f"{', '.join(MODES)} (default {DEFAULT_MODE}: skip repeated (run, lumi, event) IDs)")
    return mode


def _describe(event_id: tuple[int, int, int]) -> str:
    return f"run {event_id[0]}, lumi {event_id[1]}, event {event_id[2]}"


class DuplicateChecker:
    """Remembers the IDs read and tells which events repeat one (:meth:`is_duplicate`), per the mode; logs one
    warning at the first repeat skipped and gives the count for the summary (:meth:`summary`)."""

    def __init__(self, mode: str, files: Sequence[str], where: str = "source") -> None:
        self.mode = check_mode(mode, where)
        self.files = list(files)
        self.skipped = 0
        self._seen: dict[tuple[int, int, int], tuple[int, int]] = {}  # ID -> (file index, entry) of its first read
        self._file: int | None = None
        self._first: str = ""

    @property
    def active(self) -> bool:
        return self.mode != NO_CHECK

    def is_duplicate(self, event_id: tuple[int, int, int], file_index: int, entry: int) -> bool:
        """Whether the event *event_id* at *entry* of input file *file_index* is to be skipped (a repeat); raises
        :class:`InputError` for a repeat with ``failOnDuplicate``."""
        if self.mode == NO_CHECK:
            return False
        if self.mode == CHECK_EACH_FILE and file_index != self._file:
            self._seen.clear()
        self._file = file_index
        first = self._seen.setdefault(event_id, (file_index, entry))
        if first == (file_index, entry):
            return False
        here = f"{self.files[file_index]} (entry {entry})"
        there = f"{self.files[first[0]]} (entry {first[1]})"
        if self.mode == FAIL:
            raise InputError(
                f"duplicate event {_describe(event_id)} in {here}: already read from {there} "
                f"(duplicateCheckMode={FAIL}). Remove the repeated events or file from the input, or give "
                f"duplicateCheckMode={CHECK_ALL} to skip repeats ({NO_CHECK} to process them).")
        self.skipped += 1
        if self.skipped == 1:
            self._first = f"{_describe(event_id)} in {here}, first read from {there}"
            log.warning("duplicate event %s in %s: already read from %s; skipped (duplicateCheckMode=%s; %s processes "
                        "repeats, %s makes them an error). Further repeats are skipped and counted in the summary.",
                        _describe(event_id), here, there, self.mode, NO_CHECK, FAIL)
        return True

    def summary(self) -> str | None:
        """The job-summary line (None when nothing was skipped)."""
        if not self.skipped:
            return None
        return (f"duplicateCheckMode={self.mode}: skipped {self.skipped} event{'s' if self.skipped != 1 else ''} whose "
                f"(run, lumi, event) repeats one read before (the first: {self._first})")
