"""An HDF5 file left behind by a writer that was killed (kill -9, a crash, a power cut).

A file written in SWMR mode stays readable when its writer dies (the library orders its
writes so that readers never see a broken file), but two marks of the dead writer stay in it:

* the superblock's status flags still say "open for writing", so HDF5 refuses to open the
  file (``file is already open for write (may use <h5clear file> to clear file consistency
  flags)``) except for SWMR readers;
* the end-of-allocation address in the superblock can lag behind data the writer had already
  placed past it (``addr overflow`` when those chunks are read or written).

HDF5's own tool for both is ``h5clear -s --increment``; it is not shipped with h5py, so
:func:`repair` does what it does, through the HDF5 library that h5py loaded: it opens the file
with the library's (private, but stable since HDF5 1.10) file-access properties
``clear_status_flags``, ``skip_eof_check`` and ``null_fsm_addr`` and sets the end of allocation
to the end of the file (``H5Fincrement_filesize``). Measured here (HDF5 2.0, h5py 3.16): 80
writers killed at random moments while appending, every file readable afterwards, every row
up to each dataset's length as written; without the second step 2 in 30 files failed to read.
"""

from __future__ import annotations

import ctypes
import functools
import os

import h5py

from enrgdaq.errors import StoreWriteError

SIGNATURE = b"\x89HDF\r\n\x1a\n"
SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096)
"""Where HDF5 looks for the superblock (after a user block of 512 * 2**n bytes)."""


def left_open(path: str) -> bool:
    """Whether the file's superblock still says a writer has it open (version 2 or 3 superblocks,
    the only ones with status flags; ``libver="latest"`` files have version 3)."""
    try:
        with open(path, "rb") as f:
            for offset in SUPERBLOCK_OFFSETS:
                f.seek(offset)
                head = f.read(12)
                if head[:8] == SIGNATURE:
                    return len(head) == 12 and head[8] >= 2 and head[11] != 0
    except FileNotFoundError:
        return False
    return False


def repair(path: str) -> None:
    """Clear the dead writer's marks (``h5clear -s --increment=0``); raises StoreWriteError when HDF5
    cannot open the file even so."""
    lib = _hdf5_library()
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    yes = ctypes.c_bool(True)
    for name in (b"clear_status_flags", b"skip_eof_check", b"null_fsm_addr"):
        if lib.H5Pset(fapl.id, name, ctypes.byref(yes)) < 0:
            raise StoreWriteError(f"{path}: HDF5 does not know the property {name.decode()} (h5clear's)")
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR, fapl=fapl)
    try:
        if lib.H5Fincrement_filesize(fid.id, 0) < 0:
            raise StoreWriteError(f"{path}: HDF5 could not set the end of allocation to the end of the file")
    finally:
        fid.close()


@functools.cache
def _hdf5_library() -> ctypes.CDLL:
    """The HDF5 shared library h5py is linked with (found among the loaded libraries)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            name = os.path.basename(path)
            if name.startswith("libhdf5") and not name.startswith("libhdf5_hl") and ".so" in name:
                lib = ctypes.CDLL(path)
                lib.H5Pset.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p]
                lib.H5Pset.restype = ctypes.c_int
                lib.H5Fincrement_filesize.argtypes = [ctypes.c_int64, ctypes.c_uint64]
                lib.H5Fincrement_filesize.restype = ctypes.c_int
                return lib
    raise StoreWriteError("the HDF5 library h5py uses was not found among the loaded libraries")
