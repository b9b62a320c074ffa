//! Who may call the API: tokens (`X-Auth-Token`, ZStack's `Authorization: OAuth <session>`),
//! compared in constant time, each optionally limited to one project (`--token T@PROJECT`); or
//! an AK/SK signature as the cloud's SDKs send it (`Authorization: SDK-HMAC-SHA256 ...` with
//! `X-Sdk-Date`, [`super::sign`]), valid for every project.

use super::ids::unix_now;
use super::sign;
use hyper::header::{HeaderMap, AUTHORIZATION};
use subtle::ConstantTimeEq;

/// The largest difference between a signed request's `X-Sdk-Date` and the server's clock.
pub const MAX_SKEW_S: i64 = 15 * 60;

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
}

/// The domain of GA's global resources for a caller that names none (an all-projects token or
/// an AK/SK signature without `X-Domain-Id`): one fixed id, shaped like the cloud's.
pub const DEFAULT_DOMAIN: &str = "0b11a5b1b0e54c9fa5d0c0a1e7f1a0d0";

/// The header GA's SDK sends with a global (domain) credential.
pub const DOMAIN_HEADER: &str = "x-domain-id";

/// The domain a request acts in, for global resources (GA endpoint groups): `X-Domain-Id` when
/// an all-projects caller sends one, else [`DEFAULT_DOMAIN`]; a `T@PROJECT` token's domain is its
/// project, and naming another domain is refused (`None`: 403).
pub fn domain(headers: &HeaderMap, scope: &Scope) -> Option<String> {
    let named = headers.get(DOMAIN_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).filter(|d| !d.is_empty());
    match (scope, named) {
        (Scope::All, Some(d)) => Some(d.to_string()),
        (Scope::All, None) => Some(DEFAULT_DOMAIN.to_string()),
        (Scope::Project(p), Some(d)) if d != p => None,
        (Scope::Project(p), _) => Some(p.clone()),
    }
}

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub secret: String,
    pub scope: Scope,
}

impl Token {
    /// `T` (every project) or `T@PROJECT`. An `@` that belongs to the secret is written `\@`
    /// (and a `\` as `\\`); a token with more than one unescaped `@` is refused as ambiguous.
    pub fn parse(s: &str) -> Result<Token, String> {
        let mut secret = String::new();
        let mut project: Option<String> = None;
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('@' | '\\')) => project.as_mut().unwrap_or(&mut secret).push(e),
                    _ => return Err(format!("token `{s}`: `\\` must be followed by `@` or `\\`")),
                },
                '@' if project.is_none() => project = Some(String::new()),
                '@' => {
                    return Err(format!(
                        "token `{s}` has more than one `@`: `T@PROJECT` limits T to one project; \
                         write `\\@` for an `@` that is part of the secret"
                    ))
                }
                c => project.as_mut().unwrap_or(&mut secret).push(c),
            }
        }
        if secret.is_empty() {
            return Err("empty token".into());
        }
        let scope = match project {
            Some(p) if p.is_empty() => return Err(format!("token `{s}`: empty project after `@`")),
            Some(p) => Scope::Project(p),
            None => Scope::All,
        };
        Ok(Token { secret, scope })
    }
}

/// An access key and its secret (`--ak`, `--sk`).
#[derive(Clone)]
pub struct KeyPair {
    pub ak: String,
    pub sk: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("ak", &self.ak).finish_non_exhaustive()
    }
}

/// The configured credentials.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub tokens: Vec<Token>,
    pub aksk: Option<KeyPair>,
}

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// As received, still percent-encoded.
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What the headers alone say about a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// A configured token: the caller's scope is known.
    Token(Scope),
    /// An AK/SK signature that may be valid (right key, fresh date): the body decides.
    Signature,
}

impl Auth {
    /// The caller's scope: a matching token's, or every project for a valid AK/SK signature;
    /// `None` otherwise.
    pub fn check(&self, headers: &HeaderMap, req: Signed<'_>) -> Option<Scope> {
        match self.presented(headers)? {
            Presented::Token(scope) => Some(scope),
            Presented::Signature => self.check_signature(headers, req),
        }
    }

    /// What can be decided before the body is read: a token, or a signature worth reading the
    /// body for; `None` (answer 401 at once) otherwise.
    pub fn presented(&self, headers: &HeaderMap) -> Option<Presented> {
        if let Some(scope) = self.check_token(headers) {
            return Some(Presented::Token(scope));
        }
        let kp = self.aksk.as_ref()?;
        match sign::precheck(headers, &kp.ak, unix_now(), MAX_SKEW_S) {
            Ok(()) => Some(Presented::Signature),
            Err(e) => {
                refused(&e);
                None
            }
        }
    }

    /// Every project for a valid AK/SK signature over the whole request; `None` otherwise.
    pub fn check_signature(&self, headers: &HeaderMap, req: Signed<'_>) -> Option<Scope> {
        let kp = self.aksk.as_ref()?;
        let checked =
            sign::verify(req.method, req.path, req.query, headers, req.body, &kp.ak, &kp.sk, unix_now(), MAX_SKEW_S);
        match checked {
            Ok(()) => Some(Scope::All),
            Err(e) => {
                refused(&e);
                None
            }
        }
    }

    /// Every configured token is compared, in constant time each, so that timing reveals
    /// neither which token matched nor how much of one did.
    fn check_token(&self, headers: &HeaderMap) -> Option<Scope> {
        let presented = presented_token(headers)?;
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.secret.as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
                found = Some(t.scope.clone());
            }
        }
        found
    }
}

fn refused(e: &sign::SignError) {
    if *e != sign::SignError::Missing {
        tracing::info!(error = %e, "signature refused");
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
        let auth = Auth {
            tokens: vec![Token::parse("admin").unwrap(), Token::parse("t1@proj1").unwrap()],
            aksk: Some(KeyPair { ak: "AK".into(), sk: "SK".into() }),
        };
        let req = Signed { method: "GET", path: "/", query: "", body: b"" };
        assert_eq!(auth.check(&headers("x-auth-token", "admin"), req), Some(Scope::All));
        assert_eq!(auth.check(&headers("x-auth-token", "t1"), req), Some(Scope::Project("proj1".into())));
        assert_eq!(auth.check(&headers("authorization", "OAuth admin"), req), Some(Scope::All));
        assert_eq!(auth.check(&headers("x-auth-token", "admi"), req), None);
        assert_eq!(auth.check(&headers("x-auth-token", "admin2"), req), None);
        assert_eq!(auth.check(&headers("authorization", "Bearer admin"), req), None);
        let forged = "SDK-HMAC-SHA256 Access=AK, SignedHeaders=x-sdk-date, Signature=00";
        assert_eq!(auth.check(&headers("authorization", forged), req), None);
        assert_eq!(auth.check(&HeaderMap::new(), req), None);
        assert!(Scope::Project("p".into()).allows("p") && !Scope::Project("p".into()).allows("q"));
        assert!(Token::parse("x@").is_err() && Token::parse("").is_err());
    }

    /// `p@ss` is the secret `p` for project `ss` (and `serve` says so at start); an `@` of the
    /// secret is escaped; two unescaped `@` are refused rather than guessed.
    #[test]
    fn an_at_sign_in_a_secret_is_escaped_and_ambiguity_refused() {
        let t = Token::parse("p@ss").unwrap();
        assert_eq!((t.secret.as_str(), t.scope), ("p", Scope::Project("ss".into())));
        let t = Token::parse(r"p\@ss").unwrap();
        assert_eq!((t.secret.as_str(), t.scope), ("p@ss", Scope::All));
        let t = Token::parse(r"p\@ss@proj1").unwrap();
        assert_eq!((t.secret.as_str(), t.scope), ("p@ss", Scope::Project("proj1".into())));
        let t = Token::parse(r"a\\b").unwrap();
        assert_eq!(t.secret, r"a\b");
        let e = Token::parse("p@ss@proj1").unwrap_err();
        assert!(e.contains("more than one `@`") && e.contains(r"\@"), "{e}");
        assert!(Token::parse(r"bad\x").is_err());
    }
}
