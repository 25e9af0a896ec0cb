//! Google Directory user photos: `users/{userKey}/photos/thumbnail` in web-safe base64.

use super::*;

/// Google's web-safe base64: `+` -> `-`, `/` -> `_`, `=` -> `*`, and `.` for padding. Both padding
/// spellings occur in the documentation; users with an odd index get `.`, the others `*`.
pub fn web_safe_base64(bytes: &[u8], dot_padding: bool) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '=' if dot_padding => '.',
            '=' => '*',
            c => c,
        })
        .collect()
}

pub(super) async fn get_photo(
    State(st): St,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&st, &headers, Need::Users) {
        return r;
    }
    let org = st.ctx.org.read().await;
    let Some(u) = resolve_user(&org, &key).and_then(|ix| org.user(ix)) else {
        return not_found("userKey");
    };
    if !u.has_photo {
        return not_found("photo");
    }
    let bytes = crate::photo::png_for(org.seed ^ u64::from(u.ix));
    let v = json!({
        "kind": "admin#directory#user#photo",
        "id": user_id(org.seed, u.ix),
        "etag": etag(&["photo", &u.ix.to_string()]),
        "primaryEmail": primary_email(u),
        "mimeType": "PNG",
        "width": 16,
        "height": 16,
        "photoData": web_safe_base64(&bytes, u.ix % 2 == 1),
    });
    drop(org);
    ok_with_fields(v, q.get("fields").map(String::as_str))
}

// ------------------------------------------------------------------ groups
