//! Checks without I/O, on the connector's own cursors: status mapping, bad JSON, cursor position.

use crate::*;

/// Status mapping, malformed bodies and "an error does not advance the cursor", on the
/// connector's own cursors (no network).
pub(crate) fn no_io_checks(
    report: &mut Report,
    subject: &Subject,
    options: &Options,
    declared: &BTreeSet<Operation>,
    groups: &QueryOutput,
    queries: &[Query],
) {
    let session = match subject.connector.open(options) {
        Ok(s) => s,
        Err(e) => {
            report.record("status.mapping", Outcome::Failed(format!("open: {e}")));
            return;
        }
    };
    let json_headers = vec![("content-type".to_string(), "application/json".to_string())];
    let answer = |query: &Query, status: u16, body: &[u8]| -> Result<(Option<String>, bool), String> {
        let mut cursor = session
            .query(query)
            .map_err(|e| format!("query {query:?}: {e}"))?;
        let request = cursor.next_request().ok_or("the cursor sent no request")?;
        let response = HttpResponse {
            status,
            headers: json_headers.clone(),
            body: body.to_vec(),
        };
        match cursor.on_response(response) {
            Ok(_) => Ok((None, true)),
            Err(e) => {
                let same = cursor.next_request().as_ref() == Some(&request);
                Ok((Some(format!("{}: {e}", variant(&e))), same))
            }
        }
    };
    let mut kept = true;
    for (name, status, want) in [
        ("status.401_unauthorized", 401, "Unauthorized"),
        ("status.403_forbidden", 403, "Forbidden"),
        ("status.429_rate_limited", 429, "RateLimited"),
        ("status.500_transient", 500, "Transient"),
        ("status.502_transient", 502, "Transient"),
        ("status.503_transient", 503, "Transient"),
    ] {
        match answer(&Query::ListUsers, status, b"{}") {
            Ok((Some(got), same)) => {
                kept &= same;
                report.check(name, got.starts_with(want), || {
                    format!("HTTP {status} gave {got}, not {want}")
                })
            }
            Ok((None, _)) => report.record(
                name,
                Outcome::Failed(format!("HTTP {status} was taken as a page")),
            ),
            Err(e) => report.record(name, Outcome::Failed(e)),
        }
    }
    match answer(&Query::ListUsers, 200, b"{\"users\": [{\"id\": ") {
        Ok((Some(got), same)) => {
            kept &= same;
            report.check("status.bad_json_protocol", got.starts_with("Protocol"), || {
                format!("a 200 with broken JSON gave {got}, not Protocol")
            })
        }
        Ok((None, _)) => report.record(
            "status.bad_json_protocol",
            Outcome::Failed("a 200 with broken JSON was taken as a page".into()),
        ),
        Err(e) => report.record("status.bad_json_protocol", Outcome::Failed(e)),
    }
    // every declared query's cursor: after a 503, 429, 401 or a broken 200, an error other than
    // NotFound and the same request again
    let mut moved = Vec::new();
    for q in queries {
        for (status, body) in [(503, &b""[..]), (429, b""), (401, b""), (200, b"{not json")] {
            match answer(q, status, body) {
                Ok((Some(_), false)) => moved.push(format!("{q:?} after HTTP {status}")),
                // NotFound would make the host record "none" for a failed read
                Ok((Some(got), true)) if got.starts_with("NotFound") => {
                    moved.push(format!("{q:?}: HTTP {status} gave {got}"))
                }
                Ok(_) => {}
                Err(e) => moved.push(e),
            }
        }
    }
    report.check("cursor.error_keeps_position", kept && moved.is_empty(), || {
        format!(
            "after an error, next_request did not return the same request: {}",
            if moved.is_empty() {
                "ListUsers".to_string()
            } else {
                moved.join("; ")
            }
        )
    });
    let group = ids(groups, true).into_iter().next();
    match (declared.contains(&Operation::GroupMembers), group) {
        (true, Some(group_id)) => match answer(&Query::GroupMembers { group_id }, 404, b"{}") {
            Ok((Some(got), _)) => report.check("status.404_not_found", got.starts_with("NotFound"), || {
                format!("HTTP 404 on a group's members gave {got}, not NotFound")
            }),
            Ok((None, _)) => report.record(
                "status.404_not_found",
                Outcome::Failed("HTTP 404 on a group's members was taken as a page".into()),
            ),
            Err(e) => report.record("status.404_not_found", Outcome::Failed(e)),
        },
        _ => report.record(
            "status.404_not_found",
            Outcome::Skipped("no group members operation, or no group".into()),
        ),
    }
}
