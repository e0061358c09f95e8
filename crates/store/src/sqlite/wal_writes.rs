//! A VFS that writes each commit's WAL frames with one system call. SQLite
//! writes a frame as two: its 24-byte header, then its page. A turn's
//! commit of a dozen pages was two dozen `pwrite`s, each a trip into the
//! kernel and its file system that cost more than the bytes it copied: on
//! the path of every first token (docs/benchmarks.md, 2026-12-07 12:00).
//!
//! This VFS is SQLite's default one with a WAL file that gathers an append
//! (the WAL's header, then frames, each written right after the last) in
//! memory and writes it as one when the frame that commits the transaction
//! is complete. SQLite publishes a commit to readers (the WAL index header)
//! only after that frame's write returns, so every reader, the checkpointer
//! and a process killed after the commit find the frames in the file, as
//! before; and an error of that write fails the commit that made it.
//! Anything else done with the file (a read, a sync, its size, a write that
//! does not continue the append) first writes what is gathered, so SQLite
//! never sees the file other than it would have. A write that is not the
//! start of an append (a commit of one page, a page overwritten within its
//! transaction, a checksum rewritten) goes straight through. The test
//! `every_kind_of_commit_leaves_nothing_gathered` holds the bundled SQLite
//! to the write pattern this relies on.
//!
//! Database files and every other file are the default VFS's own, untouched.

use rusqlite::ffi;
use std::ffi::{c_int, c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// The name connections open the database with (`vfs=`).
pub const VFS: &str = "switchboard-wal";

/// A frame's header; its bytes 4..8 are the database's size in pages after
/// a commit, zero in a frame that does not commit.
const FRAME_HEADER: usize = 24;
/// The WAL's own header, written at offset 0 when the WAL (re)starts.
const WAL_HEADER: usize = 32;
/// Gathered bytes are written before they would pass this: the Unix VFS
/// writes at most 128 KiB less a byte in one call (about 31 frames of 4 KiB
/// pages), and answers a bigger write with `SQLITE_FULL`.
const MAX_GATHERED: usize = 0x1_ffff;

/// The VFS this one wraps (SQLite's default).
static DEFAULT: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// A WAL file: SQLite's `sqlite3_file` first, the default VFS's file right
/// after this struct in the same allocation.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    gathered: Gathered,
}

/// Bytes of an append not yet written, from `start`.
#[derive(Default)]
struct Gathered {
    start: i64,
    bytes: Vec<u8>,
    /// The last bytes gathered are the header of a frame that commits.
    commit_header: bool,
    /// Writes made to the default VFS's file (tests count them).
    writes: u64,
}

impl Gathered {
    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }
}

/// Where the default VFS's file sits in a [`WalFile`]'s allocation.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// Registers the VFS once; its name, or why it could not be.
pub fn register() -> Result<&'static str, String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED.get_or_init(register_once).clone().map(|()| VFS)
}

#[allow(unsafe_code)]
fn register_once() -> Result<(), String> {
    // SAFETY: `sqlite3_vfs_find` initializes SQLite and returns the default
    // VFS, which lives for the whole process. The copy made of it is leaked,
    // so it too lives as long as SQLite may use it.
    unsafe {
        let default = ffi::sqlite3_vfs_find(ptr::null());
        if default.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let mut vfs = *default;
        let size = INNER_OFFSET + usize::try_from(vfs.szOsFile).map_err(|e| e.to_string())?;
        vfs.szOsFile = c_int::try_from(size).map_err(|e| e.to_string())?;
        vfs.zName = CString::new(VFS).map_err(|e| e.to_string())?.into_raw();
        vfs.pNext = ptr::null_mut();
        vfs.xOpen = Some(open);
        DEFAULT.store(default, Ordering::Release);
        let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
        if rc != ffi::SQLITE_OK {
            return Err(format!("sqlite3_vfs_register failed ({rc})"));
        }
    }
    Ok(())
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // SQLite asks a WAL file for none of version 2's or 3's methods (shared
    // memory and mapping belong to the database file).
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

// SAFETY (every function below): SQLite calls these with the file it opened
// through `open`, whose methods are `WAL_METHODS` only once `inner` and
// `gathered` are initialized, and never on one file from two threads at
// once (a connection's files are used under its mutex).

#[allow(unsafe_code)]
unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = DEFAULT.load(Ordering::Acquire);
    let Some(default_open) = (*default).xOpen else { return ffi::SQLITE_CANTOPEN };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        return default_open(default, name, file, flags, out_flags);
    }
    let wal = file.cast::<WalFile>();
    let inner = file.cast::<u8>().add(INNER_OFFSET).cast::<ffi::sqlite3_file>();
    (*wal).base.pMethods = ptr::null();
    let rc = default_open(default, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
        // SQLite closes a file whose open failed only if it has methods;
        // this one has none, so the inner file is closed here.
        if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
            close(inner);
        }
        return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
    }
    ptr::addr_of_mut!((*wal).inner).write(inner);
    ptr::addr_of_mut!((*wal).gathered).write(Gathered::default());
    (*wal).base.pMethods = &WAL_METHODS;
    ffi::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods, &'a mut Gathered) {
    let wal = file.cast::<WalFile>();
    let inner = (*wal).inner;
    (inner, &*(*inner).pMethods, &mut (*wal).gathered)
}

/// Writes what is gathered, if anything.
#[allow(unsafe_code)]
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, gathered) = parts(file);
    if gathered.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let Some(write) = methods.xWrite else { return ffi::SQLITE_IOERR_WRITE };
    let Ok(amount) = c_int::try_from(gathered.bytes.len()) else { return ffi::SQLITE_IOERR_WRITE };
    gathered.writes += 1;
    let rc = write(inner, gathered.bytes.as_ptr().cast(), amount, gathered.start);
    gathered.bytes.clear();
    gathered.commit_header = false;
    rc
}

#[allow(unsafe_code)]
unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else { return ffi::SQLITE_IOERR_WRITE };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
    let commits = len == FRAME_HEADER && bytes[4..8] != [0; 4];
    let (inner, methods, gathered) = parts(file);
    if !gathered.bytes.is_empty() && offset == gathered.end() && gathered.bytes.len() + len <= MAX_GATHERED {
        // The page of the frame whose header commits: the transaction's
        // last write before SQLite publishes it.
        let completes_commit = gathered.commit_header && len != FRAME_HEADER;
        gathered.bytes.extend_from_slice(bytes);
        gathered.commit_header = commits;
        // Or the end of a frame after which another would not fit: frames
        // stay whole in a write.
        let full = len != FRAME_HEADER && gathered.bytes.len() + FRAME_HEADER + len > MAX_GATHERED;
        return if completes_commit || full { flush(file) } else { ffi::SQLITE_OK };
    }
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // The start of an append: the WAL's header, or a header of a frame that
    // does not commit (more frames follow it).
    if (len == WAL_HEADER && offset == 0) || (len == FRAME_HEADER && !commits) {
        gathered.start = offset;
        gathered.bytes.extend_from_slice(bytes);
        return ffi::SQLITE_OK;
    }
    let Some(write) = methods.xWrite else { return ffi::SQLITE_IOERR_WRITE };
    gathered.writes += 1;
    write(inner, data, amount, offset)
}

/// Forwards a method after writing what is gathered.
macro_rules! after_flush {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        #[allow(unsafe_code)]
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let (inner, methods, _) = parts(file);
            match methods.$method {
                Some(method) => method(inner $(, $arg)*),
                None => ffi::SQLITE_IOERR,
            }
        }
    };
}

after_flush!(read, xRead(buffer: *mut c_void, amount: c_int, offset: i64));
after_flush!(truncate, xTruncate(size: i64));
after_flush!(sync, xSync(flags: c_int));
after_flush!(file_size, xFileSize(size: *mut i64));
after_flush!(lock, xLock(level: c_int));
after_flush!(unlock, xUnlock(level: c_int));
after_flush!(check_reserved_lock, xCheckReservedLock(out: *mut c_int));
after_flush!(file_control, xFileControl(op: c_int, arg: *mut c_void));

#[allow(unsafe_code)]
unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let (inner, methods, _) = parts(file);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
    ptr::drop_in_place(ptr::addr_of_mut!((*file.cast::<WalFile>()).gathered));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, _) = parts(file);
    methods.xSectorSize.map_or(4096, |f| f(inner))
}

#[allow(unsafe_code)]
unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, _) = parts(file);
    methods.xDeviceCharacteristics.map_or(0, |f| f(inner))
}

/// The bytes gathered in connection `db`'s WAL file and the writes made to
/// it so far; `None` if its WAL is not this VFS's (or not open).
#[cfg(test)]
#[allow(unsafe_code)]
fn gathered_of(db: &rusqlite::Connection) -> Option<(usize, u64)> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: the connection's handle is valid while `db` lives, and the
    // file is read only while the connection runs nothing.
    unsafe {
        let main = c"main".as_ptr();
        let rc = ffi::sqlite3_file_control(
            db.handle(),
            main,
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            ptr::addr_of_mut!(file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || !ptr::eq((*file).pMethods, &WAL_METHODS) {
            return None;
        }
        let gathered = &(*file.cast::<WalFile>()).gathered;
        Some((gathered.bytes.len(), gathered.writes))
    }
}

#[cfg(test)]
#[path = "wal_writes_tests.rs"]
mod tests;
