//! Who is calling: a bearer API key (stored as its SHA-256) or one of Chatter's JWTs (HS256 with
//! the shared secret, `sub` = user id, `exp` required). Admins see every job and event, may clean
//! up and use the dashboard; a user sees only their own jobs. Admin rights come from the config
//! only (`[api] admins`, an admin key), never from a token's claims.
use super::problem::Problem;
use crate::config::ApiSettings;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub admin: bool,
    /// When the credential expires (a JWT's `exp`, Unix seconds); SSE streams end then.
    pub expires_at: Option<u64>,
}

impl Caller {
    /// The owner a query is scoped to: the user's own jobs, or everything for an admin.
    pub fn scope(&self) -> Option<&str> {
        (!self.admin).then_some(self.user.as_str())
    }
    /// May this caller see a job owned by `owner`?
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.admin || owner == Some(self.user.as_str())
    }
}

struct Key {
    user: String,
    admin: bool,
}

pub struct Auth {
    jwt: Option<DecodingKey>,
    keys: HashMap<String, Key>,
    admins: HashSet<String>,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// Chatter marks its tokens `access` / `refresh`; only access tokens are accepted.
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The cookie the dashboard's login sets: a session id (`super::session`), never a credential.
pub const COOKIE: &str = "cw_session";

/// The hex SHA-256 of an API key, as `[[api.keys]] sha256` stores it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh random API key (`cwk_` + 32 random bytes, hex).
pub fn new_key() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("cwk_{}", hex::encode(bytes))
}

impl Auth {
    pub fn new(settings: &ApiSettings) -> Self {
        let secret = settings.jwt_secret();
        Self {
            jwt: secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            keys: settings
                .keys
                .iter()
                .map(|k| {
                    (
                        k.sha256.to_ascii_lowercase(),
                        Key {
                            user: k.user.clone(),
                            admin: k.admin,
                        },
                    )
                })
                .collect(),
            admins: settings.admins.iter().cloned().collect(),
        }
    }

    /// True when no credential can ever be accepted (every API call answers 401).
    pub fn is_closed(&self) -> bool {
        self.jwt.is_none() && self.keys.is_empty()
    }

    /// The caller from `Authorization: Bearer`.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .map(str::trim)
                    .ok_or_else(|| Problem::unauthorized("Authorization must be `Bearer <token>`"))
            })
            .transpose()?;
        let token = bearer.ok_or_else(|| {
            Problem::unauthorized("missing credentials: send `Authorization: Bearer <token>`")
        })?;
        self.verify(token)
    }

    pub fn verify(&self, token: &str) -> Result<Caller, Problem> {
        if token.matches('.').count() == 2 {
            let Some(key) = &self.jwt else {
                return Err(Problem::unauthorized(
                    "JWTs are not accepted (no jwt_secret)",
                ));
            };
            let mut v = Validation::new(Algorithm::HS256);
            v.leeway = 5;
            v.set_required_spec_claims(&["exp", "sub"]);
            // Chatter's access tokens carry no audience; one that does is not refused for it.
            v.validate_aud = false;
            let data = jsonwebtoken::decode::<Claims>(token, key, &v)
                .map_err(|e| Problem::unauthorized(format!("invalid token: {e}")))?;
            let c = data.claims;
            if c.sub.is_empty() || c.sub.len() > 64 {
                return Err(Problem::unauthorized(
                    "invalid token: `sub` must be 1..=64 bytes",
                ));
            }
            if let Some(k) = c.kind.as_deref().filter(|k| *k != "access") {
                return Err(Problem::unauthorized(format!(
                    "invalid token: a {k:?} token; send an access token"
                )));
            }
            let admin = self.admins.contains(&c.sub);
            return Ok(Caller {
                user: c.sub,
                admin,
                expires_at: Some(c.exp),
            });
        }
        match self.keys.get(&hash_key(token)) {
            Some(k) => Ok(Caller {
                user: k.user.clone(),
                admin: k.admin || self.admins.contains(&k.user),
                expires_at: None,
            }),
            None => Err(Problem::unauthorized("invalid API key")),
        }
    }
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeySettings;

    fn auth() -> Auth {
        Auth::new(&ApiSettings {
            jwt_secret: Some("s3cret".into()),
            admins: vec!["root".into()],
            keys: vec![ApiKeySettings {
                name: "svc".into(),
                sha256: hash_key("cwk_test"),
                user: "svc-user".into(),
                admin: false,
            }],
            ..ApiSettings::default()
        })
    }

    fn jwt(sub: &str, exp: i64, secret: &str) -> String {
        let claims = serde_json::json!({"sub": sub, "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn keys_and_tokens_name_the_caller() {
        let a = auth();
        let now = chrono::Utc::now().timestamp();
        assert_eq!(
            a.verify("cwk_test").unwrap(),
            Caller {
                user: "svc-user".into(),
                admin: false,
                expires_at: None
            }
        );
        assert!(a.verify("cwk_other").is_err());
        assert_eq!(a.verify(&jwt("u1", now + 60, "s3cret")).unwrap().user, "u1");
        assert!(a.verify(&jwt("root", now + 60, "s3cret")).unwrap().admin);
        let expired = a.verify(&jwt("u1", now - 3600, "s3cret")).unwrap_err();
        assert_eq!(expired.status, 401);
        assert!(expired.detail.contains("Expired"), "{}", expired.detail);
        assert_eq!(
            a.verify(&jwt("u1", now + 60, "other")).unwrap_err().status,
            401
        );
        let refresh = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "exp": now + 60, "type": "refresh"}),
            &jsonwebtoken::EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(a.verify(&refresh).unwrap_err().status, 401);
        // alg "none", unsigned: refused.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert_eq!(a.verify(none).unwrap_err().status, 401);
    }
}
