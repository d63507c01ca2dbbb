//! One shared token: clients send `Authorization: Bearer <token>`, or exchange it for itself
//! through OAuth2 client credentials (`POST /v1/oauth/tokens`, the token as client secret),
//! which is how PyIceberg's `credential="client:secret"` and DuckDB's secrets log in.

use serde_json::json;

use super::{Response, RestError};

/// Errors (401) unless the request carries the server's token, or the server has none.
pub fn check(token: Option<&str>, authorization: Option<&str>) -> Result<(), RestError> {
    let Some(token) = token else {
        return Ok(());
    };
    let presented = authorization
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, presented)| presented.trim());
    match presented {
        Some(presented) if same(presented, token) => Ok(()),
        Some(_) => Err(unauthorized("the bearer token is not this server's token")),
        None => Err(unauthorized(
            "this server needs a token: send `Authorization: Bearer <token>` (PyIceberg: \
             token=...; or credential=\"client:<token>\")",
        )),
    }
}

/// `POST /v1/oauth/tokens` with `grant_type=client_credentials`: the server's token for a
/// client secret equal to it.
pub fn issue_token(token: Option<&str>, body: &[u8]) -> Result<Response, RestError> {
    let form: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(token) = token else {
        return Ok(oauth_error(
            400,
            "invalid_request",
            "this server has no token: connect without a credential",
        ));
    };
    if field("grant_type") != Some("client_credentials") {
        return Ok(oauth_error(
            400,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        ));
    }
    if !field("client_secret").is_some_and(|secret| same(secret, token)) {
        return Ok(oauth_error(
            401,
            "invalid_client",
            "the client secret is not this server's token",
        ));
    }
    Ok(Response::json(
        200,
        &json!({
            "access_token": token,
            "token_type": "bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }),
    ))
}

fn unauthorized(message: &str) -> RestError {
    RestError::new(401, "NotAuthorizedException", message)
}

/// OAuth2's own error shape (RFC 6749 §5.2), which the token endpoint answers with.
fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
