//! The harness of tests/it/ldap.rs: an emulator org synced into a store, `usersync ldap serve`
//! started on it, `ldapsearch` and friends run against it, and an LDIF reader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, BufReader};
use usersync_emulator::{start, EmulatorOptions, GenConfig, RunningEmulator};
use usersync_store::{Member, SqliteStore, Store, StoredGroup, StoredUser};

pub(super) const SECRET_ENV: &str = "USERSYNC_IT_LDAP_KC_SECRET";
pub(super) const PW_ENV: &str = "USERSYNC_IT_LDAP_PW";
pub(super) const PASSWORD: &str = "s3rvice-Account-pw";
pub(super) const BASE: &str = "dc=example,dc=com";
pub(super) const BIND_DN: &str = "cn=reader,ou=services,dc=example,dc=com";

/// One LDIF entry: DN and attributes (lower-case names) with their values.
#[derive(Debug, Clone)]
pub(super) struct Ldif {
    pub(super) dn: String,
    pub(super) attrs: BTreeMap<String, Vec<String>>,
}

impl Ldif {
    pub(super) fn all(&self, a: &str) -> Vec<String> {
        self.attrs.get(&a.to_lowercase()).cloned().unwrap_or_default()
    }

    pub(super) fn one(&self, a: &str) -> String {
        let v = self.all(a);
        assert_eq!(v.len(), 1, "{} has {} values of {a}: {v:?}", self.dn, v.len());
        v[0].clone()
    }
}

/// Parse `ldapsearch -LLL -o ldif-wrap=no` output.
pub(super) fn parse_ldif(text: &str) -> Vec<Ldif> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut e: Option<Ldif> = None;
        for line in block
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (name, value) = match line.split_once(":: ") {
                Some((n, b64)) => (
                    n,
                    String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .unwrap_or_else(|e| panic!("base64 in `{line}`: {e}")),
                    )
                    .into_owned(),
                ),
                None => match line.split_once(": ") {
                    Some((n, v)) => (n, v.to_string()),
                    None => (line.trim_end_matches(':'), String::new()),
                },
            };
            if name == "dn" {
                e = Some(Ldif {
                    dn: value,
                    attrs: BTreeMap::new(),
                });
            } else if let Some(e) = e.as_mut() {
                e.attrs.entry(name.to_lowercase()).or_default().push(value);
            }
        }
        out.extend(e);
    }
    out
}

/// A test CA (`ca.pem`), a server certificate it signed for localhost/127.0.0.1 (`ldap.pem`,
/// `ldap.key`), and another CA that signed nothing (`other_ca.pem`), in `dir`.
pub(super) fn write_tls(dir: &Path) {
    let ca = |name: &str| {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("usersync LDAP test CA");
    let leaf_key = rcgen::KeyPair::generate().expect("server key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
    std::fs::write(dir.join("ldap.pem"), leaf.pem()).expect("write cert");
    std::fs::write(dir.join("ldap.key"), leaf_key.serialize_pem()).expect("write key");
    std::fs::write(dir.join("other_ca.pem"), ca("another CA").0.pem()).expect("write other CA");
}

/// Start `usersync ldap serve` with `config` (and the service account's password in
/// [`PW_ENV`]) and wait for its "listening on ldap://127.0.0.1:`port`" line.
pub(super) async fn spawn_serve(config: &Path, port: u16) -> tokio::process::Child {
    let mut c = crate::support::usersync_command(config);
    c.args(["ldap", "serve"])
        .env(PW_ENV, PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn usersync ldap serve");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("usersync ldap serve did not start within 60 s")
        .expect("read stdout");
    let Some(first) = first else {
        let status = child.wait().await;
        panic!("usersync ldap serve exited ({status:?}); run it by hand with this config to see why");
    };
    assert!(first.contains(&format!("ldap://127.0.0.1:{port}")), "{first}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The emulator, the synced store, the config, and the running LDAP server.
pub(super) struct Harness {
    pub(super) emu: RunningEmulator,
    pub(super) dir: tempfile::TempDir,
    pub(super) port: u16,
    pub(super) ldaps_port: u16,
    pub(super) server: Option<tokio::process::Child>,
}

pub(super) struct Out {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Harness {
    pub(super) async fn new(users: u32, groups: u32, extra_ldap: &str) -> Harness {
        assert!(
            which("ldapsearch"),
            "ldapsearch is missing: run `sh tests/ldap/setup.sh` (or `cargo xtask test`, which runs it)"
        );
        let mut opts = EmulatorOptions::new("keycloak");
        opts.gen = GenConfig {
            users,
            groups,
            seed: 23,
            nesting_depth: 3,
            ..GenConfig::default()
        };
        let emu = start(opts).await.expect("start the keycloak emulator");
        let dir = tempfile::tempdir().expect("tempdir");
        write_tls(dir.path());
        let (port, ldaps_port) = (free_port(), free_port());
        let config = format!(
            r#"
[store]
path = "store.db"

[[connections]]
name = "kc"
connector = "keycloak"
[connections.options]
base_url = "{url}"
realm = "{realm}"
client_id = "{client_id}"
client_secret = {{ env = "{SECRET_ENV}" }}

[ldap]
base_dn = "{BASE}"
listen = "127.0.0.1:{port}"
ldaps_listen = "127.0.0.1:{ldaps_port}"
tls_cert = "ldap.pem"
tls_key = "ldap.key"
posix = true
{extra_ldap}
[[ldap.service_accounts]]
dn = "{BIND_DN}"
password = {{ env = "{PW_ENV}" }}
"#,
            url = emu.http_url,
            realm = usersync_emulator::providers::keycloak::REALM,
            client_id = emu.credentials().client_id,
        );
        std::fs::write(dir.path().join("usersync.toml"), config).expect("write config");
        let secret = emu.credentials().client_secret.clone();
        let run =
            crate::support::sync_report(&dir.path().join("usersync.toml"), &[], &[(SECRET_ENV, &secret)])
                .await;
        assert_eq!(run.code, 0, "sync failed: {}", run.stderr);
        let mut h = Harness {
            emu,
            dir,
            port,
            ldaps_port,
            server: None,
        };
        h.sync().await;
        h.start().await;
        h
    }

    pub(super) async fn sync(&self) {
        let secret = self.emu.credentials().client_secret.clone();
        let run = crate::support::sync_report(&self.config(), &[], &[(SECRET_ENV, &secret)]).await;
        assert_eq!(run.code, 0, "sync failed: {}", run.stderr);
    }

    pub(super) fn config(&self) -> PathBuf {
        self.dir.path().join("usersync.toml")
    }

    /// Start `usersync ldap serve` and wait for its "listening" line.
    pub(super) async fn start(&mut self) {
        self.server = Some(spawn_serve(&self.config(), self.port).await);
    }

    pub(super) async fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill().await;
        }
    }

    pub(super) fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldapsearch -x -LLL` bound as the service account, with `args` after.
    pub(super) async fn search(&self, args: &[&str]) -> Out {
        self.client("ldapsearch", &["-D", BIND_DN, "-w", PASSWORD], args)
            .await
    }

    pub(super) async fn client(&self, tool: &str, auth: &[&str], args: &[&str]) -> Out {
        let ldif: &[&str] = if tool == "ldapsearch" {
            &["-LLL", "-o", "ldif-wrap=no"]
        } else {
            &[]
        };
        self.client_plain(tool, &[ldif, auth].concat(), args).await
    }

    /// `tool -x -H <url> <auth> <args>` as it is (no output options added).
    pub(super) async fn client_plain(&self, tool: &str, auth: &[&str], args: &[&str]) -> Out {
        let out = tokio::process::Command::new(tool)
            .args(["-x", "-H", &self.url()])
            .args(auth)
            .args(args)
            .env("LDAPTLS_CACERT", self.dir.path().join("ca.pem"))
            .env("LDAPTLS_REQCERT", "demand")
            .env_remove("LDAPRC")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {tool}: {e} (install it: sh tests/ldap/setup.sh)"));
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Entries of a successful search.
    pub(super) async fn entries(&self, base: &str, filter: &str, attrs: &[&str]) -> Vec<Ldif> {
        let mut args = vec!["-b", base, filter];
        args.extend_from_slice(attrs);
        let out = self.search(&args).await;
        assert_eq!(
            out.code, 0,
            "ldapsearch -b {base} {filter}: {}{}",
            out.stdout, out.stderr
        );
        parse_ldif(&out.stdout)
    }

    pub(super) fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.dir.path().join("store.db")).expect("open store")
    }
}

pub(super) fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(bin).is_file()))
        .unwrap_or(false)
}

/// What the store says the tree must hold.
pub(super) struct Expected {
    pub(super) users: Vec<StoredUser>,
    pub(super) groups: Vec<StoredGroup>,
    /// group name -> direct user members' usernames
    pub(super) user_members: BTreeMap<String, BTreeSet<String>>,
    /// group name -> nested group names
    pub(super) group_members: BTreeMap<String, BTreeSet<String>>,
}

pub(super) fn expected(h: &Harness) -> Expected {
    let s = h.store();
    let st = s.state("kc").expect("state");
    let users: Vec<StoredUser> = st.users.iter().filter(|u| u.active).cloned().collect();
    let uname: HashMap<&str, &str> = users
        .iter()
        .map(|u| (u.provider_id.as_str(), u.username.as_str()))
        .collect();
    let gname: HashMap<&str, &str> = st
        .groups
        .iter()
        .map(|g| (g.provider_id.as_str(), g.name.as_str()))
        .collect();
    let (mut user_members, mut group_members) = (BTreeMap::new(), BTreeMap::new());
    for m in &st.memberships {
        let g = gname[m.group.as_str()].to_string();
        match &m.member {
            Member::User(u) => {
                if let Some(n) = uname.get(u.as_str()) {
                    user_members
                        .entry(g)
                        .or_insert_with(BTreeSet::new)
                        .insert(n.to_string());
                }
            }
            Member::Group(c) => {
                group_members
                    .entry(g)
                    .or_insert_with(BTreeSet::new)
                    .insert(gname[c.as_str()].to_string());
            }
        }
    }
    Expected {
        users,
        groups: st.groups.clone(),
        user_members,
        group_members,
    }
}

pub(super) fn user_dn(name: &str) -> String {
    format!("cn={name},ou=users,{BASE}")
}

pub(super) fn group_dn(name: &str) -> String {
    format!("cn={name},ou=groups,{BASE}")
}

pub(super) fn lower(v: Vec<String>) -> BTreeSet<String> {
    v.into_iter().map(|s| s.to_lowercase()).collect()
}
