//! Package build, verification (tampering, target, ABI, signatures), install and rollback.

use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use usersync_release::*;
use usersync_sdk::{Capabilities, Manifest};

fn manifest(id: &str, version: &str, abi: u32) -> Manifest {
    Manifest {
        id: id.into(),
        name: "Test".into(),
        version: version.into(),
        abi_version: abi,
        auth: Vec::new(),
        endpoints: Vec::new(),
        capabilities: Capabilities::default(),
        options: Vec::new(),
        default_concurrency: 1,
    }
}

fn policy(keys: Vec<String>) -> TrustPolicy {
    TrustPolicy {
        trusted_keys: keys,
        host_target: HOST_TARGET.into(),
        abi_min: 1,
        abi_max: 1,
    }
}

fn build(dir: &Path, id: &str, version: &str, abi: u32, target: &str, lib: &[u8]) -> PathBuf {
    let lib_path = dir.join(format!("lib-{id}-{version}.so"));
    std::fs::write(&lib_path, lib).expect("write lib");
    build_package(&lib_path, &manifest(id, version, abi), target, &dir.join("dist")).expect("package")
}

/// Minisign "Ed" (legacy, non-prehashed) signature and public key, as the minisign tool writes them.
fn sign(key: &SigningKey, file: &Path) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = std::fs::read(file).expect("read");
    let key_id = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let sig = key.sign(&data).to_bytes();
    let mut sig_blob = b"Ed".to_vec();
    sig_blob.extend_from_slice(&key_id);
    sig_blob.extend_from_slice(&sig);
    let trusted = "timestamp:0\tfile:package";
    let mut global_msg = sig.to_vec();
    global_msg.extend_from_slice(trusted.as_bytes());
    let global = key.sign(&global_msg).to_bytes();
    let text = format!(
        "untrusted comment: signature from usersync test key\n{}\ntrusted comment: {trusted}\n{}\n",
        b64.encode(&sig_blob),
        b64.encode(global)
    );
    std::fs::write(format!("{}.minisig", file.display()), &text).expect("write sig");
    let mut pk = b"Ed".to_vec();
    pk.extend_from_slice(&key_id);
    pk.extend_from_slice(key.verifying_key().as_bytes());
    b64.encode(pk)
}

#[test]
fn package_is_reproducible_and_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = build(
        dir.path(),
        "okta",
        "1.2.0",
        1,
        HOST_TARGET,
        b"\x7fELF fake library",
    );
    let first = std::fs::read(&a).expect("read");
    let b = build(
        dir.path(),
        "okta",
        "1.2.0",
        1,
        HOST_TARGET,
        b"\x7fELF fake library",
    );
    assert_eq!(
        first,
        std::fs::read(&b).expect("read"),
        "same inputs must give the same archive bytes"
    );
    assert_eq!(
        a.file_name().and_then(|n| n.to_str()),
        Some(format!("usersync-connector-okta-1.2.0-{HOST_TARGET}.tar.gz").as_str())
    );
    let v = verify_package(&a, &policy(vec![])).expect("verify");
    assert_eq!(v.manifest.id, "okta");
    assert_eq!(v.library, b"\x7fELF fake library");
    let sums = std::fs::read_to_string(dir.path().join("dist/SHA256SUMS")).expect("sums");
    assert_eq!(sums.lines().count(), 1, "rebuilding replaces the line: {sums}");
}

#[test]
fn tampered_package_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = build(dir.path(), "okta", "1.0.0", 1, HOST_TARGET, &vec![7u8; 4096]);
    let mut bytes = std::fs::read(&pkg).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&pkg, &bytes).expect("write");
    let err = verify_package(&pkg, &policy(vec![])).unwrap_err();
    assert!(matches!(err, ReleaseError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}

#[test]
fn package_without_checksum_line_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = build(dir.path(), "okta", "1.0.0", 1, HOST_TARGET, b"lib");
    std::fs::write(dir.path().join("dist/SHA256SUMS"), "").expect("empty sums");
    let err = verify_package(&pkg, &policy(vec![])).unwrap_err();
    assert!(matches!(err, ReleaseError::MissingChecksum { .. }), "{err}");
}

#[test]
fn package_for_another_target_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = build(dir.path(), "okta", "1.0.0", 1, "aarch64-apple-darwin", b"lib");
    let err = verify_package(&pkg, &policy(vec![])).unwrap_err();
    assert!(matches!(err, ReleaseError::WrongTarget { .. }), "{err}");
    assert!(err.to_string().contains("aarch64-apple-darwin"), "{err}");
}

#[test]
fn incompatible_abi_is_refused_with_the_accepted_range() {
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = build(dir.path(), "okta", "1.0.0", 7, HOST_TARGET, b"lib");
    let err = verify_package(&pkg, &policy(vec![])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: plugin ABI version 7 is not accepted by this usersync (it accepts ABI version 1); nothing was installed",
            pkg.display()
        )
    );
}

#[test]
fn signatures_are_required_once_keys_are_trusted() {
    let dir = tempfile::tempdir().expect("tmp");
    let pkg = build(dir.path(), "okta", "1.0.0", 1, HOST_TARGET, b"lib");
    let trusted = SigningKey::from_bytes(&[7u8; 32]);
    let stranger = SigningKey::from_bytes(&[9u8; 32]);

    // keys configured, no signature
    let trusted_pub = {
        let scratch = dir.path().join("scratch");
        std::fs::write(&scratch, b"x").expect("write");
        sign(&trusted, &scratch)
    };
    let err = verify_package(&pkg, &policy(vec![trusted_pub.clone()])).unwrap_err();
    assert!(err.to_string().contains("unsigned packages are refused"), "{err}");

    // signed by a key that is not trusted
    sign(&stranger, &pkg);
    let err = verify_package(&pkg, &policy(vec![trusted_pub.clone()])).unwrap_err();
    assert!(matches!(err, ReleaseError::Signature { .. }), "{err}");

    // signed by the trusted key
    sign(&trusted, &pkg);
    let v = verify_package(&pkg, &policy(vec![trusted_pub.clone()])).expect("signed package verifies");
    assert_eq!(v.signed_by.as_deref(), Some(trusted_pub.as_str()));

    // a malformed trusted key is a configuration error, not a silent pass
    let err = verify_package(&pkg, &policy(vec!["not-a-key".into()])).unwrap_err();
    assert!(matches!(err, ReleaseError::BadTrustedKey { .. }), "{err}");
}

#[test]
fn install_keeps_previous_and_rollback_swaps_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let plugins = dir.path().join("plugins");
    let v1 = verify_package(
        &build(dir.path(), "okta", "1.0.0", 1, HOST_TARGET, b"v1"),
        &policy(vec![]),
    )
    .expect("v1");
    let v2 = verify_package(
        &build(dir.path(), "okta", "1.1.0", 1, HOST_TARGET, b"v2"),
        &policy(vec![]),
    )
    .expect("v2");

    let r1 = install(&v1, &plugins).expect("install v1");
    assert_eq!(r1.previous, None);
    let r2 = install(&v2, &plugins).expect("install v2");
    assert_eq!(std::fs::read(&r2.installed).expect("read"), b"v2");
    assert_eq!(
        std::fs::read(r2.previous.as_ref().expect("kept")).expect("read"),
        b"v1"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&r2.installed)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o755);
    let leftovers: Vec<_> = std::fs::read_dir(&plugins)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left behind");

    rollback(&plugins, "okta").expect("rollback");
    assert_eq!(
        std::fs::read(installed_path(&plugins, "okta")).expect("read"),
        b"v1"
    );
    rollback(&plugins, "okta").expect("roll forward again");
    assert_eq!(
        std::fs::read(installed_path(&plugins, "okta")).expect("read"),
        b"v2"
    );

    let removed = remove(&plugins, "okta").expect("remove");
    assert_eq!(removed.len(), 2);
    assert!(rollback(&plugins, "okta").is_err());
    assert!(remove(&plugins, "okta").is_err());
}
