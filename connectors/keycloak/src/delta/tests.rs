//! Tests of the admin-events feed cursor with canned Keycloak responses.

use super::*;
use serde_json::json;

fn session() -> KeycloakSession {
    let values = [
        ("base_url", json!("https://sso.example.com")),
        ("realm", json!("acme")),
        ("client_id", json!("usersync")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let o = usersync_sdk::Options::from_values(values).with_secret_set("client_secret");
    KeycloakSession::new(&o).expect("session")
}

fn ok(body: serde_json::Value) -> HttpResponse {
    HttpResponse::new(200, body.to_string())
}

fn event(id: &str, time: i64, op: &str, rtype: &str, path: &str) -> serde_json::Value {
    json!({"id": id, "time": time, "realmId": "r", "operationType": op, "resourceType": rtype, "resourcePath": path})
}

/// Drive a cursor with canned responses; returns the requests' URLs and every record.
fn drive(c: &mut dyn Cursor, responses: Vec<HttpResponse>) -> (Vec<String>, Vec<Record>) {
    let (mut urls, mut records) = (Vec::new(), Vec::new());
    for r in responses {
        let req = c.next_request().expect("a request for every response");
        urls.push(req.url);
        records.extend(c.on_response(r).expect("no error").records);
    }
    assert!(c.next_request().is_none(), "the query is complete");
    (urls, records)
}

#[test]
fn users_feed_rereads_changed_users_and_reports_removals_and_left_groups() {
    let t = 1_796_651_100_000;
    let since = Mark {
        time: Some(t),
        seen: vec!["e0".into()],
    }
    .encode();
    let mut c = AdminEventsCursor::new(&session(), Feed::Users, Some(&since));
    let events = json!([
        event("e0", t, "UPDATE", "USER", "users/u9"),
        event("e1", t + 1, "DELETE", "USER", "users/u1"),
        event("e2", t + 2, "CREATE", "GROUP_MEMBERSHIP", "users/u2/groups/g1"),
        event("e3", t + 3, "DELETE", "GROUP_MEMBERSHIP", "users/u2/groups/g2"),
        event("e4", t + 4, "UPDATE", "USER", "users/u2"),
    ]);
    let (urls, records) = drive(
        &mut c,
        vec![
            ok(json!({"adminEventsEnabled": true})),
            ok(events),
            ok(json!({"id": "u2", "username": "ana", "enabled": true})),
            ok(json!([{"id": "g1", "name": "G1"}])),
            ok(json!([])),
        ],
    );
    let from = t - SKEW_MARGIN_MS;
    assert_eq!(urls[0], "https://sso.example.com/admin/realms/acme/events/config");
    assert_eq!(
        urls[1],
        format!(
            "https://sso.example.com/admin/realms/acme/admin-events?resourceTypes=USER&resourceTypes=GROUP_MEMBERSHIP&dateFrom={from}&direction=asc&first=0&max=100"
        )
    );
    assert!(urls[2].ends_with("/users/u2"), "{}", urls[2]);
    assert!(urls[3].contains("/users/u2/groups?"), "{}", urls[3]);
    let user = records.iter().find_map(|r| match r {
        Record::User(u) => Some(u.id.as_str()),
        _ => None,
    });
    assert_eq!(user, Some("u2"), "the already-read event of u9 is skipped");
    let tail: Vec<&Record> = records.iter().filter(|r| !matches!(r, Record::User(_))).collect();
    assert_eq!(
        tail,
        vec![
            &Record::Membership(Membership::direct_user("g1", "u2")),
            &Record::Feed(FeedEntry::MembershipRemoved(Membership::direct_user("g2", "u2"))),
            &Record::Feed(FeedEntry::UserRemoved {
                id: "u1".into(),
                permanent: true
            }),
            &Record::Feed(FeedEntry::Watermark(
                Mark {
                    time: Some(t + 4),
                    seen: ["e4", "e3", "e2", "e1", "e0"].map(String::from).to_vec(),
                }
                .encode()
            )),
        ]
    );
}

#[test]
fn groups_feed_rereads_a_changed_sub_group_and_lists_the_children_of_a_parent_that_got_one() {
    let t = 1_796_651_100_000;
    let since = Mark {
        time: Some(t),
        seen: vec!["e0".into()],
    }
    .encode();
    let mut c = AdminEventsCursor::new(&session(), Feed::Groups, Some(&since));
    let events = json!([
        event("e0", t, "UPDATE", "GROUP", "groups/g0"),
        event("e1", t + 1, "UPDATE", "GROUP", "groups/g"),
        event("e2", t + 2, "CREATE", "GROUP", "groups/p/children"),
    ]);
    let g = json!({"id": "g", "name": "G", "path": "/P/G", "parentId": "p", "subGroupCount": 0});
    let kid = json!({"id": "c", "name": "C", "path": "/P/C", "parentId": "p", "subGroupCount": 0});
    let (urls, records) = drive(
        &mut c,
        vec![
            ok(json!({"adminEventsEnabled": true})),
            ok(events),
            ok(g.clone()),
            ok(json!([kid, g])),
            ok(json!([])),
        ],
    );
    assert!(urls[1].contains("resourceTypes=GROUP&dateFrom="), "{}", urls[1]);
    assert!(urls[2].ends_with("/groups/g"), "{}", urls[2]);
    assert!(
        urls[3].contains("/groups/p/children?"),
        "the parent's children are listed: {}",
        urls[3]
    );
    let links: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(r, Record::Membership(_)))
        .collect();
    assert!(
        links.contains(&&Record::Membership(Membership::direct_group("p", "c"))),
        "{records:?}"
    );
    assert!(
        links.contains(&&Record::Membership(Membership::direct_group("p", "g"))),
        "{records:?}"
    );
    let renamed = records.iter().find_map(|r| match r {
        Record::Group(x) if x.id == "g" => Some((x.path.clone(), x.parent_id.clone())),
        _ => None,
    });
    assert_eq!(renamed, Some((Some("/P/G".into()), Some("p".into()))));
    assert!(matches!(
        records.last(),
        Some(Record::Feed(FeedEntry::Watermark(_)))
    ));
}

#[test]
fn events_off_expired_group_deletes_and_moves_ask_for_a_full_read() {
    let t = 1_796_651_100_000;
    let since = Mark {
        time: Some(t),
        seen: vec!["e0".into()],
    }
    .encode();
    let is_resync = |records: &[Record]| matches!(records, [Record::Feed(FeedEntry::Resync { .. })]);
    let on = || ok(json!({"adminEventsEnabled": true}));
    let cases: Vec<(Feed, Vec<HttpResponse>)> = vec![
        (Feed::Users, vec![ok(json!({"adminEventsEnabled": false}))]),
        (
            Feed::Users,
            vec![
                on(),
                ok(json!([event("e5", t + 9, "UPDATE", "USER", "users/u1")])),
            ],
        ),
        (
            Feed::Groups,
            vec![
                on(),
                ok(json!([
                    event("e0", t, "UPDATE", "GROUP", "groups/g0"),
                    event("e1", t + 1, "DELETE", "GROUP", "groups/g1")
                ])),
            ],
        ),
        (
            Feed::Groups,
            vec![
                on(),
                ok(json!([
                    event("e0", t, "UPDATE", "GROUP", "groups/g0"),
                    event("e1", t + 1, "UPDATE", "GROUP", "groups/g2/children")
                ])),
            ],
        ),
    ];
    for (i, (feed, responses)) in cases.into_iter().enumerate() {
        let mut c = AdminEventsCursor::new(&session(), feed, Some(&since));
        let (_, records) = drive(&mut c, responses);
        assert!(is_resync(&records), "case {i}: {records:?}");
    }
    let mut c = AdminEventsCursor::new(&session(), Feed::Groups, Some("garbage"));
    let (_, records) = drive(&mut c, vec![on()]);
    assert!(is_resync(&records), "{records:?}");
}

#[test]
fn the_current_position_is_one_request_for_the_newest_events() {
    let mut c = AdminEventsCursor::new(&session(), Feed::Groups, None);
    let (urls, records) = drive(
        &mut c,
        vec![ok(json!([event("e7", 5_000_000, "CREATE", "GROUP", "groups/g")]))],
    );
    assert!(
        urls[0].contains("resourceTypes=GROUP&direction=desc&first=0"),
        "{}",
        urls[0]
    );
    assert_eq!(
        records,
        vec![Record::Feed(FeedEntry::Watermark(
            "keycloak-admin-events:5000000:e7".into()
        ))]
    );
}

#[test]
fn watermarks_round_trip_and_bad_ones_are_refused() {
    let m = Mark {
        time: Some(1_796_651_100_123),
        seen: vec!["a".into(), "b".into()],
    };
    assert_eq!(Mark::parse(&m.encode()), Some(m));
    assert_eq!(Mark::parse("keycloak-admin-events:-:"), Some(Mark::default()));
    for bad in [
        "okta-time:1",
        "keycloak-admin-events:12:",
        "keycloak-admin-events:x:a",
        "keycloak-admin-events:-:a",
        "keycloak-admin-events:-1:a",
    ] {
        assert_eq!(Mark::parse(bad), None, "{bad}");
    }
}

#[test]
fn the_mark_keeps_the_newest_first_within_the_margin() {
    let events = vec![
        (1_000, "old".to_string()),
        (SKEW_MARGIN_MS + 5_000, "mid".to_string()),
        (SKEW_MARGIN_MS + 6_000, "new".to_string()),
    ];
    let m = Mark::from_events(&events).expect("a mark");
    assert_eq!(m.time, Some(SKEW_MARGIN_MS + 6_000));
    assert_eq!(m.seen, vec!["new".to_string(), "mid".to_string()]);
    assert_eq!(Mark::from_events(&[]), None);
}
