use http::{HeaderMap, HeaderValue, Method, header};

use super::*;

const TOKEN: &str = "correct-horse-battery-staple-0123";

fn auth() -> AdminAuth {
    AdminAuth::new(Some(&SecretKey::new(TOKEN)))
}

fn with(name: header::HeaderName, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

fn cookie(id: &str) -> HeaderMap {
    with(header::COOKIE, &format!("other=1; {SESSION_COOKIE}={id}"))
}

#[test]
fn the_right_bearer_token_authenticates() {
    let h = with(header::AUTHORIZATION, &format!("Bearer {TOKEN}"));
    assert_eq!(auth().authenticate(&h), Ok(Principal::Bearer));
    let lower = with(header::AUTHORIZATION, &format!("bearer {TOKEN}"));
    assert_eq!(auth().authenticate(&lower), Ok(Principal::Bearer));
}

#[test]
fn a_wrong_token_is_invalid() {
    let h = with(header::AUTHORIZATION, "Bearer not-the-token");
    assert_eq!(auth().authenticate(&h), Err(AuthError::Invalid));
    let basic = with(header::AUTHORIZATION, &format!("Basic {TOKEN}"));
    assert_eq!(auth().authenticate(&basic), Err(AuthError::Invalid));
    let empty = with(header::AUTHORIZATION, "Bearer ");
    assert_eq!(auth().authenticate(&empty), Err(AuthError::Invalid));
}

#[test]
fn no_credentials_at_all_is_missing() {
    assert_eq!(
        auth().authenticate(&HeaderMap::new()),
        Err(AuthError::Missing)
    );
}

#[test]
fn without_a_configured_token_everything_is_refused() {
    let off = AdminAuth::new(None);
    assert!(!off.enabled());
    assert!(!off.token_matches(""));
    let h = with(header::AUTHORIZATION, "Bearer anything");
    assert_eq!(off.authenticate(&h), Err(AuthError::Disabled));
    assert_eq!(
        off.authenticate(&HeaderMap::new()),
        Err(AuthError::Disabled)
    );
}

#[test]
fn token_check_compares_fixed_length_digests_so_prefixes_and_extensions_fail() {
    // The comparison runs over two SHA-256 digests with subtle's ct_eq: the time taken
    // cannot depend on how much of the token matched, nor on its length.
    let a = auth();
    assert!(a.token_matches(TOKEN));
    assert!(!a.token_matches(&TOKEN[..TOKEN.len() - 1]));
    assert!(!a.token_matches(&format!("{TOKEN}x")));
    assert!(!a.token_matches(&TOKEN.replace('0', "1")));
    assert!(!a.token_matches(""));
    assert_eq!(a.token_digest.map(|d| d.len()), Some(32));
}

#[test]
fn a_wrong_bearer_token_fails_even_with_a_valid_session_cookie() {
    let a = auth();
    let (id, _) = a.login();
    let mut h = cookie(&id);
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer wrong"),
    );
    assert_eq!(a.authenticate(&h), Err(AuthError::Invalid));
}

#[test]
fn a_session_cookie_authenticates_and_logout_ends_it() {
    let a = auth();
    let (id, csrf) = a.login();
    assert_ne!(id, csrf);
    assert_eq!(
        a.authenticate(&cookie(&id)),
        Ok(Principal::Session { csrf })
    );
    a.logout(&cookie(&id));
    assert_eq!(a.authenticate(&cookie(&id)), Err(AuthError::Invalid));
    assert_eq!(a.authenticate(&cookie("forged")), Err(AuthError::Invalid));
}

#[test]
fn a_cookie_authenticated_mutation_without_the_csrf_header_is_refused() {
    let a = auth();
    let (id, csrf) = a.login();
    let h = cookie(&id);
    assert!(
        a.authorize(&Method::GET, &h).is_ok(),
        "reads need no CSRF header"
    );
    assert_eq!(a.authorize(&Method::POST, &h), Err(AuthError::Csrf));
    assert_eq!(a.authorize(&Method::PATCH, &h), Err(AuthError::Csrf));
    assert_eq!(a.authorize(&Method::DELETE, &h), Err(AuthError::Csrf));
    let mut wrong = h.clone();
    wrong.insert(CSRF_HEADER, HeaderValue::from_static("guess"));
    assert_eq!(a.authorize(&Method::PUT, &wrong), Err(AuthError::Csrf));
    let mut right = h;
    right.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
    assert!(a.authorize(&Method::DELETE, &right).is_ok());
}

#[test]
fn bearer_mutations_need_no_csrf_header() {
    let h = with(header::AUTHORIZATION, &format!("Bearer {TOKEN}"));
    assert_eq!(auth().authorize(&Method::DELETE, &h), Ok(Principal::Bearer));
}

#[test]
fn sessions_are_bounded() {
    let a = auth();
    let first = a.login().0;
    for _ in 0..MAX_SESSIONS {
        let _ = a.login();
    }
    assert_eq!(a.session_count(), MAX_SESSIONS);
    assert_eq!(
        a.authenticate(&cookie(&first)),
        Err(AuthError::Invalid),
        "the oldest made room"
    );
}

#[test]
fn session_ids_are_random_and_cookies_are_strict() {
    let a = auth();
    let (one, _) = a.login();
    let (two, _) = a.login();
    assert_ne!(one, two);
    assert!(one.len() >= 43, "256 random bits");
    let c = session_set_cookie(&one, false);
    assert!(c.starts_with(&format!("{SESSION_COOKIE}={one};")));
    assert!(c.contains("; HttpOnly; SameSite=Strict; Path=/"));
    assert!(!c.contains(TOKEN));
    assert!(session_clear_cookie().contains("Max-Age=0"));
}
