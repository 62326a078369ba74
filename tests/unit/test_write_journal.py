"""The write journal: after a crash, a write that went through is not repeated, one cut short is undone."""

from __future__ import annotations

import os

import pytest

from enrgdaq.daq.store.journal import WriteJournal
from enrgdaq.errors import JournalUnreachableError


def sized(path, size: int) -> str:
    with open(path, "wb") as f:
        f.write(b"x" * size)
    return str(path)


def test_a_write_that_went_through_skips_the_ring_payloads_it_covered(tmp_path) -> None:
    a = sized(tmp_path / "a.csv", 100)
    journal = WriteJournal(str(tmp_path), "store")
    journal.record({a: (40, 100)}, {"ring-p": (7, 12)})

    recovery = journal.recover()

    assert recovery.skip == {"ring-p": (7, 12)} and recovery.cut == {}
    assert os.path.getsize(a) == 100


def test_a_write_cut_short_is_undone_in_every_file_and_nothing_is_skipped(tmp_path) -> None:
    a = sized(tmp_path / "a.csv", 100)  # went through
    b = sized(tmp_path / "b.csv", 15)  # cut short: 10 -> 30 was planned
    c = str(tmp_path / "c.csv")  # a new file that was never created
    journal = WriteJournal(str(tmp_path), "store")
    journal.record({a: (40, 100), b: (10, 30), c: (0, 50)}, {"ring-p": (7, 12)})

    recovery = journal.recover()

    assert recovery.skip == {}
    assert recovery.cut == {a: 40, b: 10}
    assert (os.path.getsize(a), os.path.getsize(b), os.path.exists(c)) == (40, 10, False)


def test_a_file_someone_else_changed_is_left_alone(tmp_path) -> None:
    a = sized(tmp_path / "a.csv", 130)  # longer than the write could have made it
    journal = WriteJournal(str(tmp_path), "store")
    journal.record({a: (40, 100)}, {"ring-p": (7, 12)})

    recovery = journal.recover()

    assert (recovery.skip, recovery.cut) == ({}, {})
    assert os.path.getsize(a) == 130


def test_no_journal_or_an_unreadable_one_changes_nothing(tmp_path) -> None:
    journal = WriteJournal(str(tmp_path), "store")
    assert (journal.recover().skip, journal.recover().cut) == ({}, {})
    with open(journal.path, "w") as f:
        f.write("{not json")
    assert (journal.recover().skip, journal.recover().cut) == ({}, {})
    journal.remove()
    assert not os.path.exists(journal.path)


def test_a_write_whose_directory_is_away_is_not_judged_until_it_is_back(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = sized(out / "a.csv", 100)
    journal = WriteJournal(str(tmp_path), "store")
    journal.record({a: (40, 100)}, {"ring-p": (7, 12)})
    os.rename(out, tmp_path / "aside")
    with open(out, "w") as f:  # the directory replaced by a file (an unmounted disk looks alike)
        f.write("not a directory\n")

    with pytest.raises(JournalUnreachableError, match=f"{out} is not a directory now"):
        journal.recover()
    assert os.path.exists(journal.path)

    os.unlink(out)
    os.rename(tmp_path / "aside", out)
    assert journal.recover().skip == {"ring-p": (7, 12)}  # the write went through: not repeated


class MovedWhileRead:
    """Byte files, whose directory is moved away while the first length is read (the race of a
    restart with a disk being unmounted): the length read is of nothing."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def length(self, name: str) -> int:
        if os.path.isdir(self.directory):
            os.rename(self.directory, self.directory + ".away")
        return os.path.getsize(name) if os.path.exists(name) else 0

    def cut(self, name: str, length: int) -> None:
        raise AssertionError("nothing may be cut on a length read of nothing")


class Unreadable:
    def length(self, name: str) -> int:
        raise PermissionError(13, "Permission denied", name)

    def cut(self, name: str, length: int) -> None:
        raise AssertionError("not reached")


def test_a_directory_that_goes_while_its_files_are_measured_or_a_file_that_cannot_be_read_is_not_judged(
    tmp_path,
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = sized(out / "a.csv", 100)
    journal = WriteJournal(str(tmp_path), "store")
    journal.record({a: (40, 100)}, {"ring-p": (7, 12)})

    with pytest.raises(JournalUnreachableError, match="is not a directory now"):
        journal.recover(MovedWhileRead(str(out)))
    with pytest.raises(JournalUnreachableError, match="Permission denied"):
        os.rename(tmp_path / "out.away", out)
        journal.recover(Unreadable())

    assert os.path.getsize(a) == 100 and os.path.exists(journal.path)
    assert journal.recover().skip == {"ring-p": (7, 12)}
