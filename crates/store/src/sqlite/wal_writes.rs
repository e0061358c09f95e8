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
//! never sees the file other than it would have, and so does the release of
//! the WAL's write lock (on the database file, whose methods are otherwise
//! the default VFS's, forwarded): frames of a transaction that spilled its
//! cache and rolled back are written while the connection still owns that
//! end of the WAL, never later over another connection's commit. A write
//! that cannot start an append (a page overwritten within its transaction,
//! a checksum rewritten in place, a header where no frame starts) goes
//! straight through. The tests hold the bundled SQLite to the write pattern
//! this relies on.
//!
//! Every other file (journals, temporary files) is the default VFS's own.

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
    /// Its connection's database file, while both are open.
    db: *mut DbFile,
    gathered: Gathered,
}

/// A database file, laid out like [`WalFile`]; `wal` is its connection's
/// WAL file while both are open.
#[repr(C)]
struct DbFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    wal: *mut WalFile,
}

/// Bytes of an append not yet written, from `start`.
#[derive(Default)]
struct Gathered {
    start: i64,
    bytes: Vec<u8>,
    /// Where the append continues: the end of the last write, gathered or not.
    end: i64,
    /// The last bytes gathered are the header of a frame that commits.
    commit_header: bool,
    /// A frame's size (header and page) from the WAL's header; 0 while
    /// unknown, when nothing is gathered.
    frame: i64,
    /// Writes made to the default VFS's file (tests count them).
    writes: u64,
}

/// Where the default VFS's file sits in either struct's allocation.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);
const _: () = assert!(std::mem::size_of::<DbFile>() <= std::mem::size_of::<WalFile>());

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
    xClose: Some(wal_close),
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

static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(db_close),
    xRead: Some(db_read),
    xWrite: Some(db_write),
    xTruncate: Some(db_truncate),
    xSync: Some(db_sync),
    xFileSize: Some(db_file_size),
    xLock: Some(db_lock),
    xUnlock: Some(db_unlock),
    xCheckReservedLock: Some(db_check_reserved_lock),
    xFileControl: Some(db_file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(db_shm_map),
    xShmLock: Some(db_shm_lock),
    xShmBarrier: Some(db_shm_barrier),
    xShmUnmap: Some(db_shm_unmap),
    xFetch: Some(db_fetch),
    xUnfetch: Some(db_unfetch),
};

// SAFETY (every function below): SQLite calls these with a file it opened
// through `open`, whose methods are ours only once its fields are
// initialized, and never on one connection's files from two threads at
// once (they are used under its mutex). `inner` is the default VFS's open
// file; a database file and its connection's WAL file point at each other
// while both are open.

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
    let (wal, main) = (flags & ffi::SQLITE_OPEN_WAL != 0, flags & ffi::SQLITE_OPEN_MAIN_DB != 0);
    if !wal && !main {
        return default_open(default, name, file, flags, out_flags);
    }
    let inner = file.cast::<u8>().add(INNER_OFFSET).cast::<ffi::sqlite3_file>();
    (*file).pMethods = ptr::null();
    let rc = default_open(default, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
        // SQLite closes a file whose open failed only if it has methods;
        // this one has none, so the inner file is closed here.
        if let Some(close) = (*inner).pMethods.as_ref().and_then(|m| m.xClose) {
            close(inner);
        }
        return if rc == ffi::SQLITE_OK { ffi::SQLITE_CANTOPEN } else { rc };
    }
    if main {
        let db = file.cast::<DbFile>();
        ptr::addr_of_mut!((*db).inner).write(inner);
        ptr::addr_of_mut!((*db).wal).write(ptr::null_mut());
        (*file).pMethods = &DB_METHODS;
        return ffi::SQLITE_OK;
    }
    let wal = file.cast::<WalFile>();
    ptr::addr_of_mut!((*wal).inner).write(inner);
    ptr::addr_of_mut!((*wal).db).write(ptr::null_mut());
    ptr::addr_of_mut!((*wal).gathered).write(Gathered::default());
    (*file).pMethods = &WAL_METHODS;
    // A WAL that exists already says its page size; a new one will when
    // SQLite writes its header.
    let mut head = [0u8; WAL_HEADER];
    let read =
        (*(*inner).pMethods).xRead.map(|read| read(inner, head.as_mut_ptr().cast(), WAL_HEADER as c_int, 0));
    if read == Some(ffi::SQLITE_OK) {
        (*wal).gathered.frame = frame_size(&head);
    }
    // SQLite names a WAL after its database, whose file this finds.
    let db = ffi::sqlite3_database_file_object(name);
    if !db.is_null() && ptr::eq((*db).pMethods, &DB_METHODS) {
        let db = db.cast::<DbFile>();
        (*db).wal = wal;
        (*wal).db = db;
    }
    ffi::SQLITE_OK
}

/// A frame's size from a WAL header (magic, format, page size, …); 0 if it
/// is not one.
fn frame_size(head: &[u8]) -> i64 {
    let word = |i: usize| head.get(i..i + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let page = word(8);
    let valid = matches!(word(0), 0x377f_0682 | 0x377f_0683)
        && page.is_power_of_two()
        && (512..=65536).contains(&page);
    if valid {
        FRAME_HEADER as i64 + i64::from(page)
    } else {
        0
    }
}

#[allow(unsafe_code)]
unsafe fn inner(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // Both structs start with `base` then `inner`.
    let inner = (*file.cast::<WalFile>()).inner;
    (inner, &*(*inner).pMethods)
}

/// Writes what `wal` gathered, if anything.
#[allow(unsafe_code)]
unsafe fn flush(wal: *mut WalFile) -> c_int {
    let (inner, methods) = inner(wal.cast());
    let gathered = &mut (*wal).gathered;
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
    let wal = file.cast::<WalFile>();
    let Ok(len) = usize::try_from(amount) else { return ffi::SQLITE_IOERR_WRITE };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
    let header = len == FRAME_HEADER;
    let commits = header && bytes[4..8] != [0; 4];
    // Gathered only while the database file can say when the write lock goes.
    let linked = !(*wal).db.is_null();
    let gathered = &mut (*wal).gathered;
    let continues = offset == gathered.end;
    if !gathered.bytes.is_empty() {
        if continues && linked && gathered.bytes.len() + len <= MAX_GATHERED {
            // The page of the frame whose header commits: the transaction's
            // last write before SQLite publishes it.
            let completes_commit = gathered.commit_header && !header;
            gathered.bytes.extend_from_slice(bytes);
            gathered.end = offset + len as i64;
            gathered.commit_header = commits;
            // Or the end of a frame after which another would not fit:
            // frames stay whole in a write.
            let full = !header && gathered.bytes.len() + FRAME_HEADER + len > MAX_GATHERED;
            return if completes_commit || full { flush(wal) } else { ffi::SQLITE_OK };
        }
        let rc = flush(wal);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    let gathered = &mut (*wal).gathered;
    let wal_header = len == WAL_HEADER && offset == 0;
    if wal_header {
        gathered.frame = frame_size(bytes);
    }
    // An append starts with the WAL's header, or with a frame's header where
    // frames sit; one that commits only where the append continues (SQLite
    // rewrites earlier frames' headers, a commit's last, without their pages).
    let aligned = gathered.frame > 0 && (offset - WAL_HEADER as i64) % gathered.frame == 0;
    let starts = linked && (wal_header || (header && aligned && (continues || !commits)));
    gathered.end = offset + len as i64;
    if starts {
        gathered.start = offset;
        gathered.bytes.extend_from_slice(bytes);
        gathered.commit_header = commits;
        return ffi::SQLITE_OK;
    }
    let (inner, methods) = inner(file);
    let Some(write) = methods.xWrite else { return ffi::SQLITE_IOERR_WRITE };
    (*wal).gathered.writes += 1;
    write(inner, data, amount, offset)
}

/// A method of the WAL file, forwarded after writing what is gathered.
macro_rules! after_flush {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        #[allow(unsafe_code)]
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(file.cast());
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let (inner, methods) = inner(file);
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

/// A method of the database file, forwarded as it is.
macro_rules! forward {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty, $missing:expr) => {
        #[allow(unsafe_code)]
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            let (inner, methods) = inner(file);
            match methods.$method {
                Some(method) => method(inner $(, $arg)*),
                None => $missing,
            }
        }
    };
}

forward!(db_read, xRead(buffer: *mut c_void, amount: c_int, offset: i64) -> c_int, ffi::SQLITE_IOERR);
forward!(db_write, xWrite(data: *const c_void, amount: c_int, offset: i64) -> c_int, ffi::SQLITE_IOERR);
forward!(db_truncate, xTruncate(size: i64) -> c_int, ffi::SQLITE_IOERR);
forward!(db_sync, xSync(flags: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(db_file_size, xFileSize(size: *mut i64) -> c_int, ffi::SQLITE_IOERR);
forward!(db_lock, xLock(level: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(db_unlock, xUnlock(level: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(db_check_reserved_lock, xCheckReservedLock(out: *mut c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(db_file_control, xFileControl(op: c_int, arg: *mut c_void) -> c_int, ffi::SQLITE_NOTFOUND);
forward!(sector_size, xSectorSize() -> c_int, 4096);
forward!(device_characteristics, xDeviceCharacteristics() -> c_int, 0);
forward!(db_shm_map, xShmMap(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forward!(db_shm_barrier, xShmBarrier() -> (), ());
forward!(db_shm_unmap, xShmUnmap(delete: c_int) -> c_int, ffi::SQLITE_IOERR);
forward!(db_fetch, xFetch(offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR);
forward!(db_unfetch, xUnfetch(offset: i64, page: *mut c_void) -> c_int, ffi::SQLITE_IOERR);

/// The WAL's write lock: the connection's writes end when it is released.
const WAL_WRITE_LOCK: c_int = 0;

/// Before the WAL's write lock is released, its WAL file writes what it
/// gathered: frames a rolled-back transaction spilled from its cache, which
/// would otherwise be written later, over what another connection wrote
/// there meanwhile.
#[allow(unsafe_code)]
unsafe extern "C" fn db_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let wal = (*file.cast::<DbFile>()).wal;
    if offset == WAL_WRITE_LOCK && flags & ffi::SQLITE_SHM_UNLOCK != 0 && !wal.is_null() {
        // Frames of no commit: if they cannot be written, they are not needed.
        let _ = flush(wal);
    }
    let (inner, methods) = inner(file);
    match methods.xShmLock {
        Some(lock) => lock(inner, offset, n, flags),
        None => ffi::SQLITE_IOERR,
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    let wal = file.cast::<WalFile>();
    let flushed = flush(wal);
    let (inner, methods) = inner(file);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
    ptr::drop_in_place(ptr::addr_of_mut!((*wal).gathered));
    if !(*wal).db.is_null() {
        (*(*wal).db).wal = ptr::null_mut();
    }
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn db_close(file: *mut ffi::sqlite3_file) -> c_int {
    let db = file.cast::<DbFile>();
    if !(*db).wal.is_null() {
        (*(*db).wal).db = ptr::null_mut();
    }
    let (inner, methods) = inner(file);
    methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner))
}

/// Connection `db`'s WAL file, if it is this VFS's and open.
#[cfg(test)]
#[allow(unsafe_code)]
fn wal_of(db: &rusqlite::Connection) -> Option<*mut WalFile> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: the connection's handle is valid while `db` lives.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            db.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            ptr::addr_of_mut!(file).cast(),
        )
    };
    // SAFETY: a non-null journal pointer is an open file.
    let ours = rc == ffi::SQLITE_OK && !file.is_null() && ptr::eq(unsafe { (*file).pMethods }, &WAL_METHODS);
    ours.then_some(file.cast())
}

/// The bytes gathered in connection `db`'s WAL file and the writes made to
/// it so far; `None` if its WAL is not this VFS's (or not open).
#[cfg(test)]
#[allow(unsafe_code)]
fn gathered_of(db: &rusqlite::Connection) -> Option<(usize, u64)> {
    // SAFETY: read while the connection runs nothing.
    wal_of(db).map(|wal| unsafe { ((*wal).gathered.bytes.len(), (*wal).gathered.writes) })
}

/// Gathers the header of a frame that does not commit where connection
/// `db`'s WAL append continues, as a spill from its cache would.
#[cfg(test)]
#[allow(unsafe_code)]
fn gather_a_header(db: &rusqlite::Connection) {
    let wal = wal_of(db).expect("a WAL of this VFS");
    let header = [0u8; FRAME_HEADER];
    // SAFETY: the connection runs nothing meanwhile; `write` copies the bytes.
    let rc = unsafe { write(wal.cast(), header.as_ptr().cast(), FRAME_HEADER as c_int, (*wal).gathered.end) };
    assert_eq!(rc, ffi::SQLITE_OK);
}

#[cfg(test)]
#[path = "wal_writes_tests.rs"]
mod tests;
