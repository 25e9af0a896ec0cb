//! The floor: the cost of the unavoidable work of a sync on the same bytes, measured in the same
//! run as `usersync sync`. The response bodies of every listing a sync needs (users, groups, each
//! group's members) are read from the same emulator first (not counted); then the measured part
//! parses them into typed structs (serde derive, the fields the store keeps plus the rest of the
//! profile as attributes) and inserts the same rows into a new SQLite database in one
//! transaction with prepared statements. Its CPU time (this thread's, `getrusage`) is what a
//! sync cannot go below without skipping work; `usersync`'s CPU is reported as a multiple of it.
//!
//! Okta only for now (other providers: `None`, shown as `-`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

/// The floor of one organisation.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// CPU time of parsing and inserting (this thread).
    pub cpu: Duration,
    /// Bytes of the response bodies.
    pub bytes: u64,
    /// Rows inserted (users, groups, memberships).
    pub rows: u64,
}

/// Measure the floor of the organisation the emulator (its JSON line `info`) serves, with the
/// SQLite database in `dir`. `None` for a provider without a floor yet.
pub fn measure(provider: &str, info: &Value, dir: &Path) -> anyhow::Result<Option<Floor>> {
    if provider != "okta" {
        return Ok(None);
    }
    let bodies = okta_bodies(info)?;
    let bytes = bodies
        .users
        .iter()
        .chain(&bodies.groups)
        .map(|b| b.len() as u64)
        .sum::<u64>()
        + bodies
            .members
            .iter()
            .flat_map(|(_, p)| p)
            .map(|b| b.len() as u64)
            .sum::<u64>();
    let db = dir.join("floor.db");
    let _ = std::fs::remove_file(&db);
    let mut conn = rusqlite::Connection::open(&db)?;
    conn.execute_batch(SCHEMA)?;
    let start = thread_cpu();
    let rows = parse_and_insert(&bodies, &mut conn)?;
    let cpu = thread_cpu().saturating_sub(start);
    let floor = Floor { cpu, bytes, rows };
    eprintln!(
        "{provider}: floor: {} rows from {} bytes of responses parsed and inserted in {:.2} s of CPU",
        floor.rows,
        floor.bytes,
        floor.cpu.as_secs_f64()
    );
    Ok(Some(floor))
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE users (provider_id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT,
    display_name TEXT, given_name TEXT, family_name TEXT, status TEXT NOT NULL,
    attributes TEXT NOT NULL);
CREATE TABLE groups (provider_id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT,
    kind TEXT NOT NULL);
CREATE TABLE memberships (group_id TEXT NOT NULL, user_id TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id));
";

/// The response bodies of one Okta organisation, as a sync reads them.
struct Bodies {
    users: Vec<Vec<u8>>,
    groups: Vec<Vec<u8>>,
    /// Per group id, its member pages.
    members: Vec<(String, Vec<Vec<u8>>)>,
}

#[derive(Deserialize)]
struct OktaUser {
    id: String,
    status: String,
    profile: OktaProfile,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaProfile {
    login: String,
    email: Option<String>,
    display_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct OktaGroup {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    profile: OktaGroupProfile,
}

#[derive(Deserialize)]
struct OktaGroupProfile {
    name: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct OktaMember {
    id: String,
}

fn parse_and_insert(b: &Bodies, conn: &mut rusqlite::Connection) -> anyhow::Result<u64> {
    let tx = conn.transaction()?;
    let mut rows = 0;
    {
        let mut put_user = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
        for page in &b.users {
            for u in serde_json::from_slice::<Vec<OktaUser>>(page)? {
                let p = u.profile;
                let attributes = serde_json::to_string(&p.other)?;
                put_user.execute(rusqlite::params![
                    u.id,
                    p.login,
                    p.email,
                    p.display_name,
                    p.first_name,
                    p.last_name,
                    u.status,
                    attributes
                ])?;
                rows += 1;
            }
        }
        let mut put_group = tx.prepare("INSERT INTO groups VALUES (?1, ?2, ?3, ?4)")?;
        for page in &b.groups {
            for g in serde_json::from_slice::<Vec<OktaGroup>>(page)? {
                if g.kind == "BUILT_IN" {
                    continue;
                }
                put_group.execute(rusqlite::params![
                    g.id,
                    g.profile.name,
                    g.profile.description,
                    g.kind
                ])?;
                rows += 1;
            }
        }
        let mut put_member = tx.prepare("INSERT OR IGNORE INTO memberships VALUES (?1, ?2)")?;
        for (group, pages) in &b.members {
            for page in pages {
                for m in serde_json::from_slice::<Vec<OktaMember>>(page)? {
                    put_member.execute(rusqlite::params![group, m.id])?;
                    rows += 1;
                }
            }
        }
    }
    tx.commit()?;
    Ok(rows)
}

/// Every listing page of the organisation, read the way the Okta connector reads it.
fn okta_bodies(info: &Value) -> anyhow::Result<Bodies> {
    let base = info["http_url"].as_str().context("the emulator's http_url")?;
    let token = info
        .pointer("/credentials/api_token")
        .and_then(Value::as_str)
        .context("the emulator's api_token")?;
    let auth = format!("SSWS {token}");
    let users = pages(base, "/api/v1/users?search=status%20pr&limit=200", &auth)?;
    let groups = pages(base, "/api/v1/groups?limit=200", &auth)?;
    let mut members = Vec::new();
    for page in &groups {
        for g in serde_json::from_slice::<Vec<OktaGroup>>(page)? {
            if g.kind == "BUILT_IN" {
                continue;
            }
            let path = format!("/api/v1/groups/{}/users?limit=200", g.id);
            members.push((g.id, pages(base, &path, &auth)?));
        }
    }
    Ok(Bodies {
        users,
        groups,
        members,
    })
}

/// `GET` `path` and every `rel="next"` page after it; the bodies.
fn pages(base: &str, path: &str, auth: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut next = Some(path.to_string());
    while let Some(p) = next.take() {
        let (head, body) = get(base, &p, auth)?;
        out.push(body);
        next = head.lines().find_map(next_link);
    }
    Ok(out)
}

/// The path and query of a `Link: <url>; rel="next"` header line.
fn next_link(line: &str) -> Option<String> {
    let (name, value) = line.split_once(':')?;
    if !name.eq_ignore_ascii_case("link") || !value.contains("rel=\"next\"") {
        return None;
    }
    let url = value.trim().strip_prefix('<')?.split_once('>')?.0;
    let after_scheme = url.split_once("://").map_or(url, |x| x.1);
    after_scheme.find('/').map(|i| after_scheme[i..].to_string())
}

/// One HTTP/1.0 `GET` over plain TCP: the response head and body.
fn get(base: &str, path: &str, auth: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let host = base.strip_prefix("http://").context("http_url is http")?;
    let host = host.trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: {auth}\r\nAccept: application/json\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok((head, buf.split_off(split + 4)))
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD on the calling thread with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn the_next_link_is_the_path_and_query() {
        let line = "link: <https://127.0.0.1:8443/api/v1/users?after=abc&limit=200>; rel=\"next\"";
        assert_eq!(
            next_link(line).as_deref(),
            Some("/api/v1/users?after=abc&limit=200")
        );
        assert_eq!(
            next_link("link: <https://h/api/v1/users?limit=200>; rel=\"self\""),
            None
        );
        assert_eq!(next_link("content-type: application/json"), None);
    }
}
