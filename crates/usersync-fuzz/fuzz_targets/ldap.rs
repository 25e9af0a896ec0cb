//! Fuzz target: the LDAP view's request decoder (crates/usersync-ldap `codec`): the size and
//! nesting guard, the raw read of control criticality, ldap3_proto's BER decode, and what the
//! session does with a decoded request that reads input (DN parsing, filter compile/evaluation,
//! attribute selection, a whole search against a small tree). The input is a byte stream, cut in
//! two at a position taken from its first byte, so partial reads are exercised.
//! Invariant: nothing panics; every outcome is a request, "need more bytes", or an error.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use ldap3_proto::proto::LdapOp;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use usersync_ldap::codec::{critical_controls, GuardedCodec, Request};
use usersync_ldap::directory::{self, Directory, StoreView};
use usersync_ldap::search::{self, Limits, Selection};
use usersync_ldap::{dn, filter, schema};

fn tree() -> Arc<Directory> {
    static T: OnceLock<Arc<Directory>> = OnceLock::new();
    T.get_or_init(|| {
        let cfg = usersync_config::LdapConfig::new("dc=example,dc=com");
        Arc::new(directory::build(&StoreView::default(), &cfg).expect("the empty tree builds"))
    })
    .clone()
}

fn exercise(req: Request) {
    let entry = schema::root_dse("dc=example,dc=com", true);
    match req.msg.op {
        LdapOp::SearchRequest(s) => {
            let _ = dn::normalize(&s.base);
            if filter::depth(&s.filter) <= filter::MAX_DEPTH {
                let compiled = filter::compile(&s.filter);
                let _ = filter::eval(&compiled, &entry);
                let _ = Selection::new(&s.attrs).apply(&entry, s.typesonly);
            }
            let limits = Limits {
                size: 100,
                time: Duration::from_secs(1),
            };
            let _ = search::search(tree(), req.msg.msgid, &s, None, limits, true, "dc=example,dc=com");
        }
        LdapOp::BindRequest(b) => {
            let _ = dn::normalize(&b.dn);
        }
        LdapOp::CompareRequest(c) => {
            let _ = dn::normalize(&c.dn);
            let _ = entry.has_value(&dn::canonical_attr(&c.atype), &c.val);
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let _ = critical_controls(rest);
    let cut = (cut as usize * rest.len()) / 255;
    let (first, second) = rest.split_at(cut.min(rest.len()));
    let mut codec = GuardedCodec::new(64 * 1024);
    let mut buf = BytesMut::from(first);
    for chunk in [None, Some(second)] {
        if let Some(c) = chunk {
            buf.extend_from_slice(c);
        }
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(req)) => exercise(req),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
