//! Building a package archive.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use usersync_sdk::{AuthFlowSpec, Capabilities, Endpoint, Manifest};

use crate::error::{io, ReleaseError};
use crate::verify::sha256_hex;

/// Version of the package layout.
pub const PACKAGE_FORMAT: u32 = 1;

/// `manifest.json` inside a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageManifest {
    /// Package layout version ([`PACKAGE_FORMAT`]).
    pub format: u32,
    /// Connector id.
    pub id: String,
    /// Connector name.
    pub name: String,
    /// Connector version.
    pub version: String,
    /// Plugin ABI version.
    pub abi_version: u32,
    /// Target triple the library was built for.
    pub target: String,
    /// File name of the library inside the package.
    pub library: String,
    /// sha256 (hex) of the library.
    pub library_sha256: String,
    /// Auth flows.
    pub auth: Vec<AuthFlowSpec>,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Capabilities.
    pub capabilities: Capabilities,
}

/// `usersync-connector-<id>-<version>-<target>.tar.gz`
pub fn package_file_name(id: &str, version: &str, target: &str) -> String {
    format!("usersync-connector-{id}-{version}-{target}.tar.gz")
}

/// The library's file name inside a package and in a plugin directory.
pub(crate) fn library_file_name(id: &str) -> String {
    format!("libusersync_connector_{}.so", id.replace('-', "_"))
}

/// Write the package for `library` (whose manifest is `manifest`, as the library itself reports
/// it) into `out_dir`, and add or replace its line in `out_dir/SHA256SUMS`. Returns the package
/// path. The archive is reproducible: same library bytes and manifest, same archive bytes.
pub fn build_package(
    library: &Path,
    manifest: &Manifest,
    target: &str,
    out_dir: &Path,
) -> Result<PathBuf, ReleaseError> {
    let lib_bytes = std::fs::read(library).map_err(io(library))?;
    let lib_name = library_file_name(&manifest.id);
    let pm = PackageManifest {
        format: PACKAGE_FORMAT,
        id: manifest.id.clone(),
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        abi_version: manifest.abi_version,
        target: target.to_string(),
        library: lib_name.clone(),
        library_sha256: sha256_hex(&lib_bytes),
        auth: manifest.auth.clone(),
        endpoints: manifest.endpoints.clone(),
        capabilities: manifest.capabilities,
    };
    let manifest_json = serde_json::to_vec_pretty(&pm).map_err(|e| ReleaseError::Malformed {
        package: library.to_path_buf(),
        reason: e.to_string(),
    })?;
    let readme = format!(
        "usersync connector `{id}` {version} for {target}\n\n\
         Install:   usersync plugins install {file}\n\
         Verify:    the installer checks SHA256SUMS, the target, the ABI and (when trusted keys are configured)\n\
         \x20          the minisign signature {file}.minisig before writing anything.\n\
         Roll back: usersync plugins rollback {id}\n",
        id = pm.id,
        version = pm.version,
        file = package_file_name(&pm.id, &pm.version, target),
    );

    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let file_name = package_file_name(&pm.id, &pm.version, target);
    let out_path = out_dir.join(&file_name);
    let mut archive = Vec::new();
    {
        let gz: GzEncoder<&mut Vec<u8>> = GzBuilder::new().mtime(0).write(&mut archive, Compression::best());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        // sorted, fixed order
        append(&mut tar, &lib_name, &lib_bytes, 0o755, &out_path)?;
        append(&mut tar, "README.md", readme.as_bytes(), 0o644, &out_path)?;
        append(&mut tar, "manifest.json", &manifest_json, 0o644, &out_path)?;
        let gz = tar.into_inner().map_err(io(&out_path))?;
        gz.finish().map_err(io(&out_path))?;
    }
    let tmp = out_dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, &archive).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &out_path).map_err(io(&out_path))?;
    update_sums(out_dir, &file_name, &sha256_hex(&archive))?;
    Ok(out_path)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mode: u32,
    package: &Path,
) -> Result<(), ReleaseError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes).map_err(io(package))
}

fn update_sums(out_dir: &Path, file_name: &str, digest: &str) -> Result<(), ReleaseError> {
    let sums = out_dir.join("SHA256SUMS");
    let existing = match std::fs::read_to_string(&sums) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&sums)(e)),
    };
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !l.is_empty() && l.split_whitespace().nth(1) != Some(file_name))
        .map(String::from)
        .collect();
    lines.push(format!("{digest}  {file_name}"));
    lines.sort_by(|a, b| a.split_whitespace().nth(1).cmp(&b.split_whitespace().nth(1)));
    std::fs::write(&sums, lines.join("\n") + "\n").map_err(io(&sums))
}
