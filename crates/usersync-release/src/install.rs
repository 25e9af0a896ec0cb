//! Installing, rolling back and removing a connector in a plugin directory.
//!
//! Layout: the active library is `<dir>/libusersync_connector_<id>.so`; the version it replaced
//! is kept as `<dir>/.previous/libusersync_connector_<id>.so` (a hidden directory the registry
//! does not scan). Every change is a rename, so a crash leaves either the old or the new file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{io, ReleaseError};
use crate::package::library_file_name;
use crate::verify::VerifiedPackage;

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// Where the library now is.
    pub installed: PathBuf,
    /// Where the replaced version was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// The active library path of connector `id` in `dir`.
pub fn installed_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(library_file_name(id))
}

/// The kept previous version of connector `id` in `dir`.
pub fn previous_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(".previous").join(library_file_name(id))
}

/// Install a verified package: write to a temp file in `dir`, fsync, set 0755, move the current
/// version (if any) to `.previous/`, rename the temp file into place, fsync the directory.
pub fn install(pkg: &VerifiedPackage, dir: &Path) -> Result<InstallReport, ReleaseError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let id = &pkg.manifest.id;
    let target = installed_path(dir, id);
    let tmp = dir.join(format!(".{}.tmp-{}", library_file_name(id), std::process::id()));
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&pkg.library).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io(&tmp))?;
    let previous = if target.exists() {
        let prev = previous_path(dir, id);
        let prev_dir = dir.join(".previous");
        fs::create_dir_all(&prev_dir).map_err(io(&prev_dir))?;
        fs::set_permissions(&prev_dir, fs::Permissions::from_mode(0o755)).map_err(io(&prev_dir))?;
        fs::rename(&target, &prev).map_err(io(&prev))?;
        Some(prev)
    } else {
        None
    };
    if let Err(e) = fs::rename(&tmp, &target) {
        // put the old version back before reporting
        if let Some(prev) = &previous {
            let _ = fs::rename(prev, &target);
        }
        let _ = fs::remove_file(&tmp);
        return Err(io(&target)(e));
    }
    sync_dir(dir)?;
    Ok(InstallReport {
        installed: target,
        previous,
    })
}

/// Swap the active and previous versions of connector `id` (so a second rollback undoes the
/// first). Errors when no previous version is kept.
pub fn rollback(dir: &Path, id: &str) -> Result<InstallReport, ReleaseError> {
    let active = installed_path(dir, id);
    let prev = previous_path(dir, id);
    if !prev.exists() {
        return Err(ReleaseError::NotInstalled(format!(
            "no previous version of `{id}` is kept in {}",
            dir.display()
        )));
    }
    if active.exists() {
        let swap = dir.join(format!(".{}.swap-{}", library_file_name(id), std::process::id()));
        fs::rename(&active, &swap).map_err(io(&swap))?;
        fs::rename(&prev, &active).map_err(io(&active))?;
        fs::rename(&swap, &prev).map_err(io(&prev))?;
    } else {
        fs::rename(&prev, &active).map_err(io(&active))?;
    }
    sync_dir(dir)?;
    Ok(InstallReport {
        installed: active,
        previous: prev.exists().then_some(prev),
    })
}

/// Remove connector `id` from `dir` (the kept previous version goes too).
pub fn remove(dir: &Path, id: &str) -> Result<Vec<PathBuf>, ReleaseError> {
    let mut removed = Vec::new();
    for p in [installed_path(dir, id), previous_path(dir, id)] {
        if p.exists() {
            fs::remove_file(&p).map_err(io(&p))?;
            removed.push(p);
        }
    }
    if removed.is_empty() {
        return Err(ReleaseError::NotInstalled(format!(
            "connector `{id}` is not installed in {}",
            dir.display()
        )));
    }
    sync_dir(dir)?;
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), ReleaseError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
