//! Graph user photos: `photos`, `photo`, `photo/$value`, `photos/{size}/$value`.

use super::*;

/// The user whose photo is asked for, or the provider's "no photo" / "no mailbox" answer.
pub(super) fn photo_owner<'a>(org: &'a Org, id: &str) -> Result<&'a User, Response> {
    let u = find_user(org, id).ok_or_else(|| not_found(id))?;
    if u.guest {
        return Err(bad_request(
            "AuthenticationError",
            "Error authenticating with resource",
        ));
    }
    if !u.has_photo {
        return Err(image_not_found());
    }
    Ok(u)
}

pub(super) fn photo_meta(org: &Org, u: &User) -> Map<String, Value> {
    let etag = format!(
        "\"{:08X}\"",
        (org.seed ^ u64::from(u.ix)).wrapping_mul(0x9E37_79B9) as u32
    );
    json!({"@odata.mediaContentType": "image/png", "@odata.mediaEtag": etag, "id": PHOTO_SIZE, "height": 16, "width": 16})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Graph's 404 for a user without a photo (or a photo size it does not have).
pub(super) fn image_not_found() -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ImageNotFound",
        "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
    )
}

/// What every photo handler shares: the permission check, then `answer` for the photo's owner, or
/// [`photo_owner`]'s error.
async fn with_photo_owner(
    ctx: &EmuContext,
    headers: &HeaderMap,
    version: &str,
    id: &str,
    answer: impl FnOnce(&Org, &User) -> Response,
) -> Response {
    or_respond!(guard(ctx, headers, version, &[USER_READ_ALL]));
    let org = ctx.org.read().await;
    match photo_owner(&org, id) {
        Ok(u) => answer(&org, u),
        Err(r) => r,
    }
}

pub(super) async fn list_photos(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_photo_owner(&ctx, &headers, &version, &id, |org, u| {
        ok(&json!({
            "@odata.context": metadata(&base, &version, &format!("users('{id}')/photos")),
            "value": [photo_meta(org, u)],
        }))
    })
    .await
}

pub(super) async fn get_photo(
    State(ctx): Ctx,
    BaseUrl(base): BaseUrl,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_photo_owner(&ctx, &headers, &version, &id, |org, u| {
        let mut m = photo_meta(org, u);
        m.insert(
            "@odata.context".into(),
            json!(metadata(&base, &version, &format!("users('{id}')/photo/$entity"))),
        );
        ok(&Value::Object(m))
    })
    .await
}

pub(super) fn photo_bytes(org: &Org, u: &User) -> Response {
    let mut r = (StatusCode::OK, photo::png_for(org.seed ^ u64::from(u.ix))).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    r
}

pub(super) async fn photo_value(
    State(ctx): Ctx,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    with_photo_owner(&ctx, &headers, &version, &id, photo_bytes).await
}

pub(super) async fn sized_photo_value(
    State(ctx): Ctx,
    Path((version, id, size)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    with_photo_owner(&ctx, &headers, &version, &id, |org, u| {
        if size == PHOTO_SIZE {
            photo_bytes(org, u)
        } else {
            image_not_found()
        }
    })
    .await
}
