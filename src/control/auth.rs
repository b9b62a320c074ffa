//! Who may call the API: tokens (`X-Auth-Token`, ZStack's `Authorization: OAuth <session>`),
//! compared in constant time, each optionally limited to one project (`--token T@PROJECT`).

use hyper::header::{HeaderMap, AUTHORIZATION};

/// What a caller may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every project.
    All,
    /// Only this project's resources.
    Project(String),
}

impl Scope {
    pub fn allows(&self, project: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Project(p) => p == project,
        }
    }

    /// The project a scoped caller's project-less resources (GA endpoint groups) belong to.
    pub fn project(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Project(p) => Some(p),
        }
    }
}

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    pub scope: Scope,
}

impl Token {
    /// `T` (every project) or `T@PROJECT`.
    pub fn parse(s: &str) -> Result<Token, String> {
        let (secret, scope) = match s.rsplit_once('@') {
            Some((t, p)) if !p.is_empty() => (t, Scope::Project(p.to_string())),
            Some(_) => return Err(format!("token `{s}`: empty project after `@`")),
            None => (s, Scope::All),
        };
        if secret.is_empty() {
            return Err("empty token".into());
        }
        Ok(Token { secret: secret.to_string(), scope })
    }
}

/// The configured credentials.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub tokens: Vec<Token>,
}

impl Auth {
    /// The caller's scope, or `None` when the request carries no credential that matches.
    /// Every configured token is compared, in constant time each, so that timing reveals
    /// neither which token matched nor how much of one did.
    pub fn check(&self, headers: &HeaderMap) -> Option<Scope> {
        let presented = presented_token(headers)?;
        let mut found = None;
        for t in &self.tokens {
            if ct_eq(t.secret.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(t.scope.clone());
            }
        }
        found
    }
}

/// `X-Auth-Token: T`, or `Authorization: OAuth T` (ZStack).
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("OAuth").then(|| rest.trim())
}

/// Equality whose running time depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn tokens_and_scopes() {
        let auth = Auth { tokens: vec![Token::parse("admin").unwrap(), Token::parse("t1@proj1").unwrap()] };
        assert_eq!(auth.check(&headers("x-auth-token", "admin")), Some(Scope::All));
        assert_eq!(auth.check(&headers("x-auth-token", "t1")), Some(Scope::Project("proj1".into())));
        assert_eq!(auth.check(&headers("authorization", "OAuth admin")), Some(Scope::All));
        assert_eq!(auth.check(&headers("x-auth-token", "admi")), None);
        assert_eq!(auth.check(&headers("x-auth-token", "admin2")), None);
        assert_eq!(auth.check(&headers("authorization", "Bearer admin")), None);
        assert_eq!(auth.check(&HeaderMap::new()), None);
        assert!(Scope::Project("p".into()).allows("p") && !Scope::Project("p".into()).allows("q"));
        assert!(Token::parse("x@").is_err() && Token::parse("").is_err());
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab") && !ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }
}
