//! Verifying a package before anything is written: signature, checksum, target, ABI.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::error::{io, ReleaseError};
use crate::package::{PackageManifest, PACKAGE_FORMAT};

/// Largest package or library accepted (a connector library is a few MB).
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// What a host requires of a package.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Trusted minisign public keys (base64, as in a `.pub` file's second line). When non-empty,
    /// a package must carry a valid signature from one of them.
    pub trusted_keys: Vec<String>,
    /// This host's target triple.
    pub host_target: String,
    /// Lowest plugin ABI version the host accepts.
    pub abi_min: u32,
    /// Highest plugin ABI version the host accepts.
    pub abi_max: u32,
}

/// A package that passed every check, held in memory (nothing written yet).
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The package file.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: PackageManifest,
    /// The library bytes (already checked against the manifest's sha256).
    pub library: Vec<u8>,
    /// The trusted key that signed it, if signatures were required.
    pub signed_by: Option<String>,
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check a package: minisign signature (when keys are trusted), the `SHA256SUMS` line beside
/// it, the archive's layout, the target triple, the ABI range and the library's sha256.
pub fn verify_package(path: &Path, policy: &TrustPolicy) -> Result<VerifiedPackage, ReleaseError> {
    let bytes = read_capped(path)?;
    let signed_by = check_signature(path, &bytes, &policy.trusted_keys)?;
    check_sums_file(path, &bytes)?;
    let (manifest, library) = unpack(path, &bytes)?;
    let malformed = |reason: String| ReleaseError::Malformed {
        package: path.to_path_buf(),
        reason,
    };
    if manifest.format != PACKAGE_FORMAT {
        return Err(malformed(format!(
            "package format {} (this host reads format {PACKAGE_FORMAT})",
            manifest.format
        )));
    }
    if manifest.target != policy.host_target {
        return Err(ReleaseError::WrongTarget {
            package: path.to_path_buf(),
            package_target: manifest.target.clone(),
            host_target: policy.host_target.clone(),
        });
    }
    if manifest.abi_version < policy.abi_min || manifest.abi_version > policy.abi_max {
        return Err(ReleaseError::IncompatibleAbi {
            package: path.to_path_buf(),
            abi: manifest.abi_version,
            min: policy.abi_min,
            max: policy.abi_max,
        });
    }
    let actual = sha256_hex(&library);
    if actual != manifest.library_sha256 {
        return Err(ReleaseError::Checksum {
            package: path.to_path_buf(),
            what: format!("library {}", manifest.library),
            expected: manifest.library_sha256.clone(),
            actual,
        });
    }
    Ok(VerifiedPackage {
        path: path.to_path_buf(),
        manifest,
        library,
        signed_by,
    })
}

fn read_capped(path: &Path) -> Result<Vec<u8>, ReleaseError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ReleaseError::Malformed {
            package: path.to_path_buf(),
            reason: format!("larger than {MAX_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

fn check_signature(path: &Path, bytes: &[u8], keys: &[String]) -> Result<Option<String>, ReleaseError> {
    if keys.is_empty() {
        return Ok(None);
    }
    let sig_path = PathBuf::from(format!("{}.minisig", path.display()));
    let sig_text = std::fs::read_to_string(&sig_path).map_err(|e| ReleaseError::Signature {
        package: path.to_path_buf(),
        reason: format!(
            "trusted keys are configured but the signature {} cannot be read ({e}); unsigned packages are refused",
            sig_path.display()
        ),
    })?;
    let signature = minisign_verify::Signature::decode(&sig_text).map_err(|e| ReleaseError::Signature {
        package: path.to_path_buf(),
        reason: format!("{} is not a minisign signature: {e}", sig_path.display()),
    })?;
    for key in keys {
        let pk =
            minisign_verify::PublicKey::from_base64(key.trim()).map_err(|e| ReleaseError::BadTrustedKey {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        if pk.verify(bytes, &signature, true).is_ok() {
            return Ok(Some(key.clone()));
        }
    }
    Err(ReleaseError::Signature {
        package: path.to_path_buf(),
        reason: format!(
            "{} was not made by any trusted key (or the package was altered)",
            sig_path.display()
        ),
    })
}

fn check_sums_file(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let sums = path.with_file_name("SHA256SUMS");
    let text = std::fs::read_to_string(&sums).map_err(|e| ReleaseError::MissingChecksum {
        package: path.to_path_buf(),
        reason: format!(
            "{} cannot be read ({e}); it is published beside every package",
            sums.display()
        ),
    })?;
    let expected = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?, parts.next()?))
        })
        .find(|(_, file)| file.trim_start_matches('*') == name)
        .map(|(digest, _)| digest.to_ascii_lowercase())
        .ok_or_else(|| ReleaseError::MissingChecksum {
            package: path.to_path_buf(),
            reason: format!("{} has no line for {name}", sums.display()),
        })?;
    let actual = sha256_hex(bytes);
    if actual != expected {
        return Err(ReleaseError::Checksum {
            package: path.to_path_buf(),
            what: "the package".into(),
            expected,
            actual,
        });
    }
    Ok(())
}

fn unpack(path: &Path, bytes: &[u8]) -> Result<(PackageManifest, Vec<u8>), ReleaseError> {
    let malformed = |reason: String| ReleaseError::Malformed {
        package: path.to_path_buf(),
        reason,
    };
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut manifest_bytes = None;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| malformed(format!("cannot read archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| malformed(format!("cannot read archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| malformed(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .into_owned();
        if name.contains('/') || name.contains("..") || name.starts_with('.') {
            return Err(malformed(format!("unexpected entry `{name}`")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(malformed(format!("entry `{name}` is not a regular file")));
        }
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| malformed(format!("cannot read `{name}`: {e}")))?;
        if name == "manifest.json" {
            manifest_bytes = Some(data);
        } else {
            files.push((name, data));
        }
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| malformed("no manifest.json".into()))?;
    let manifest: PackageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| malformed(format!("manifest.json: {e}")))?;
    let library = files
        .into_iter()
        .find(|(n, _)| *n == manifest.library)
        .map(|(_, d)| d)
        .ok_or_else(|| {
            malformed(format!(
                "the library `{}` named by manifest.json is missing",
                manifest.library
            ))
        })?;
    Ok((manifest, library))
}
