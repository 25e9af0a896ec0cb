//! The store file on disk: read-only opens, and errors that name the path and the fix.

use super::*;

pub(super) fn display(path: &Path) -> String {
    path.display().to_string()
}

pub(super) fn code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}

/// The effective uid, and whether this process may write `dir` (by its mode bits and owner; root
/// may write anything that is not on a read-only file system).
pub(super) fn may_write(dir: &Path) -> (Option<u32>, Option<bool>) {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default()
    };
    let Some(&uid) = field("Uid:").get(1) else {
        return (None, None);
    };
    let gids: Vec<u32> = field("Gid:")
        .into_iter()
        .skip(1)
        .take(1)
        .chain(field("Groups:"))
        .collect();
    let Ok(meta) = std::fs::metadata(dir) else {
        return (Some(uid), None);
    };
    let mode = meta.mode();
    let writable = uid == 0
        || (meta.uid() == uid && mode & 0o200 != 0)
        || (meta.uid() != uid && gids.contains(&meta.gid()) && mode & 0o020 != 0)
        || (meta.uid() != uid && !gids.contains(&meta.gid()) && mode & 0o002 != 0);
    (Some(uid), Some(writable))
}

/// Why `path` cannot be written, and the fix, for a write that SQLite refused.
pub(super) fn not_writable(path: &Path, sqlite: &str) -> StoreError {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (uid, dir_ok) = may_write(&dir);
    let who = uid
        .map(|u| format!("uid {u}"))
        .unwrap_or_else(|| "this user".into());
    // opening for writing (no truncation, no write) changes nothing in the file
    let file_ok = !path.exists() || std::fs::OpenOptions::new().write(true).open(path).is_ok();
    let detail = match (dir_ok, file_ok) {
        (Some(false), _) => format!(
            "the directory `{}` is not writable by {who} (SQLite creates `{name}-wal` and `{name}-shm` \
             beside the store); make the directory{} writable by {who} (e.g. `chown {} {}`), or run \
             usersync as their owner",
            dir.display(),
            if file_ok { "" } else { " and the store file" },
            uid.map(|u| u.to_string()).unwrap_or_else(|| "<user>".into()),
            if file_ok {
                format!("{}", dir.display())
            } else {
                format!("{} {}", dir.display(), path.display())
            },
        ),
        (_, false) => format!(
            "the file is not writable by {who}; make it writable by {who} (e.g. `chown {} {}`), or run \
             usersync as its owner",
            uid.map(|u| u.to_string()).unwrap_or_else(|| "<user>".into()),
            path.display()
        ),
        _ => format!(
            "SQLite said `{sqlite}` (is the file system read-only, or are `{name}-wal`/`{name}-shm` owned by \
             another user?)"
        ),
    };
    StoreError::NotWritable {
        path: display(path),
        detail,
    }
}

/// Turn SQLite's permission and corruption errors into errors that name the store and the fix.
pub(super) fn explain(path: &Path, e: StoreError) -> StoreError {
    let StoreError::Db(db) = &e else {
        return e;
    };
    match code(db) {
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            not_writable(path, &db.to_string())
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Damaged {
            path: display(path),
            detail: db.to_string(),
        },
        _ => e,
    }
}

/// `file:` URI of a path (percent-encoding what a URI would read differently).
pub(super) fn file_uri(path: &Path, query: &str) -> String {
    let mut out = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' | b' ' | 0..=0x1f | 0x7f..=0xff => out.push_str(&format!("%{b:02X}")),
            _ => out.push(*b as char),
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Open `path` read-only, without writing anything into it or changing its journal mode. A store
/// in WAL mode needs its `-shm` file; when that cannot be created (the directory is not writable)
/// and there is no unfinished WAL, the file is opened `immutable` instead (nobody may be writing
/// it then anyway: a writer needs the same directory).
pub(super) fn open_read_only_conn(path: &Path) -> Result<Connection, StoreError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open = |uri: String| -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(uri, flags).map_err(|e| StoreError::Open {
            path: display(path),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    };
    let conn = open(file_uri(path, "mode=ro"))?;
    let probe: Result<i64, rusqlite::Error> =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
    match probe {
        Ok(_) => Ok(conn),
        Err(e) if matches!(code(&e), Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)) => {
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            if std::fs::metadata(&wal).map(|m| m.len() > 0).unwrap_or(false) {
                return Err(not_writable(path, &e.to_string()));
            }
            tracing::info!(path = %path.display(), "store opened immutable: its -shm file cannot be created");
            drop(conn);
            open(file_uri(path, "mode=ro&immutable=1"))
        }
        Err(e) => Err(explain(path, StoreError::Db(e))),
    }
}
