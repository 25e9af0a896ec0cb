//! Conformance checks of what the LDAP view reads ([`DirectoryStore`]): the consistent read of
//! the whole directory and POSIX numbers that never change, never collide and are never reused.

use super::backends::Backend;
use super::{group, outcome, put, user};
use crate::types::*;
use crate::{DirectoryStore, PosixKey, PosixKind, Store};

fn key(kind: PosixKind, pid: &str) -> PosixKey {
    (kind, "c".to_string(), pid.to_string())
}

/// Apply `changes` in a run of connection `c`.
fn run<S: Store>(s: &mut S, changes: &[Change], at: i64) {
    let id = s.begin_run("c", at).expect("begin");
    s.apply("c", id, changes, &outcome(), at + 1).expect("apply");
}

pub(super) fn the_directory_is_read_whole_and_posix_numbers_are_never_reused<B: Backend>(b: &B) {
    let mut s = b.handle();
    let mut bob = user("u2", "bob");
    bob.active = false;
    run(
        &mut s,
        &[
            put(user("u1", "ada")),
            put(bob),
            Change::PutGroup(Box::new(group("g1", "devs"))),
            Change::PutGroup(Box::new(group("g2", "all"))),
            Change::AddMembership(StoredMembership {
                group: "g1".into(),
                member: Member::User("u1".into()),
            }),
            Change::AddMembership(StoredMembership {
                group: "g2".into(),
                member: Member::Group("g1".into()),
            }),
            Change::PutEffective(EffectiveMembership {
                group: "g2".into(),
                user: "u1".into(),
                path: vec!["g1".into(), "g2".into()],
            }),
            Change::PutPhoto(Box::new(StoredPhoto {
                user: "u1".into(),
                content_type: "image/jpeg".into(),
                sha256: "ab".into(),
                bytes: Some(vec![0xff, 0xd8]),
                version: None,
            })),
            Change::PutPhoto(Box::new(StoredPhoto {
                user: "u2".into(),
                content_type: "image/jpeg".into(),
                sha256: "cd".into(),
                bytes: Some(vec![0xff, 0xd9]),
                version: None,
            })),
        ],
        1,
    );
    let read = s.read_directory(true, true).expect("read");
    assert_eq!(read.marker, s.applied_marker().expect("marker"));
    assert_eq!(read.marker.0, 1, "one applied run");
    assert_eq!(read.users, s.users(None).expect("users"));
    assert_eq!(read.groups, s.groups(None).expect("groups"));
    let mut direct: Vec<_> = read.links.direct.iter().map(|(c, m)| (c.as_str(), m)).collect();
    direct.sort();
    assert_eq!(
        direct,
        [
            (
                "c",
                &StoredMembership {
                    group: "g1".into(),
                    member: Member::User("u1".into())
                }
            ),
            (
                "c",
                &StoredMembership {
                    group: "g2".into(),
                    member: Member::Group("g1".into())
                }
            ),
        ]
    );
    assert_eq!(
        read.links.effective,
        [("c".to_string(), "g2".to_string(), "u1".to_string())]
    );
    assert!(read.posix.is_empty(), "no numbers before they are allocated");
    // photos of active users only, with their bytes
    let photos: Vec<_> = read
        .photos
        .iter()
        .map(|(c, p)| (c.as_str(), p.user.as_str(), p.bytes.clone()))
        .collect();
    assert_eq!(photos, [("c", "u1", Some(vec![0xff, 0xd8]))]);
    assert!(s.read_directory(false, false).expect("read").photos.is_empty());

    // numbers from one sequence, in the order asked, once per object (a backend may leave gaps:
    // SQLite's AUTOINCREMENT counts an ignored insert too)
    let (u1, g1, u2, g2) = (
        key(PosixKind::User, "u1"),
        key(PosixKind::Group, "g1"),
        key(PosixKind::User, "u2"),
        key(PosixKind::Group, "g2"),
    );
    let asked = [u1.clone(), g1.clone(), u1.clone()];
    assert_eq!(s.allocate_posix_ids(&asked).expect("allocate"), 2);
    let ids = s.read_directory(true, false).expect("read").posix;
    let (n_u1, n_g1) = (ids[&u1], ids[&g1]);
    assert!(0 < n_u1 && n_u1 < n_g1, "{ids:?}");
    // another handle (another host) asks again with one more: only the new one is numbered
    let mut other = b.handle();
    let asked = [g1.clone(), u2.clone(), u1.clone()];
    assert_eq!(other.allocate_posix_ids(&asked).expect("allocate"), 1);
    let ids = other.read_directory(true, false).expect("read").posix;
    let n_u2 = ids[&u2];
    assert_eq!(
        (ids[&u1], ids[&g1]),
        (n_u1, n_g1),
        "numbers never change: {ids:?}"
    );
    assert!(n_u2 > n_g1, "{ids:?}");
    // an object that goes keeps its number (it keeps it if it comes back)
    run(
        &mut s,
        &[Change::DeleteUser {
            provider_id: "u2".into(),
        }],
        3,
    );
    assert_eq!(
        s.allocate_posix_ids(std::slice::from_ref(&u2)).expect("allocate"),
        0
    );
    let ids = s.read_directory(true, false).expect("read").posix;
    assert_eq!(ids[&u2], n_u2);
    // a number is never handed out twice, even after its row is gone
    b.exec(&format!("DELETE FROM posix_ids WHERE number = {n_u2}"));
    assert_eq!(
        s.allocate_posix_ids(std::slice::from_ref(&g2)).expect("allocate"),
        1
    );
    let read = s.read_directory(true, false).expect("read");
    assert!(read.posix[&g2] > n_u2, "{:?}", read.posix);
    assert_eq!((read.posix[&u1], read.posix[&g1]), (n_u1, n_g1));
    assert_eq!(read.posix.len(), 3);
    // the marker moved with the second applied run; a read-only handle reads the same
    assert_eq!(read.marker.0, 2);
    let ro = b.open_read_only().expect("read-only");
    assert_eq!(
        ro.read_directory(true, true).expect("read"),
        s.read_directory(true, true).expect("read")
    );
}
