//! Bearer tokens: each with a scope (`read` or `write`) and optionally the zones it may touch.
//! Only SHA-256 digests are kept in memory and in the config.

use axum::http::HeaderMap;

use super::ApiError;
use crate::config::{TokenConfig, TokenScope};
use crate::zone::Name;

#[derive(Debug, Clone)]
struct Token {
    name: String,
    digest: [u8; 32],
    scope: TokenScope,
    zones: Option<Vec<Name>>,
}

/// The tokens the API accepts.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Token>);

/// The hex SHA-256 of a token, as the config stores it (`meridian hash-token`).
pub fn hash_token(token: &str) -> String {
    crate::digest::sha256(&[token.as_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Reads the configured tokens; an `env` token is read from the environment now.
    pub fn from_config(configs: &[TokenConfig]) -> Result<Self, String> {
        Self::from_config_with(configs, |var| std::env::var(var).ok())
    }

    /// [`Tokens::from_config`] with `env` as the environment (tests give their own rather
    /// than change the process's, which other threads read).
    fn from_config_with(
        configs: &[TokenConfig],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for c in configs {
            let hex = match (&c.sha256, &c.env) {
                (Some(hex), None) => hex.trim().to_ascii_lowercase(),
                (None, Some(var)) => match env(var) {
                    Some(value) if !value.is_empty() => hash_token(&value),
                    _ => {
                        return Err(format!(
                            "api token {}: environment variable {var} is not set",
                            c.name
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "api token {}: give exactly one of sha256 or env",
                        c.name
                    ));
                }
            };
            let mut digest = [0u8; 32];
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "api token {}: sha256 must be 64 hex digits",
                    c.name
                ));
            }
            for (i, byte) in digest.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("api token {}: sha256 must be hex", c.name))?;
            }
            let zones = c
                .zones
                .as_ref()
                .map(|zs| {
                    zs.iter()
                        .map(|z| parse_zone(z).map_err(|e| format!("api token {}: {e}", c.name)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            tokens.push(Token {
                name: c.name.clone(),
                digest,
                scope: c.scope,
                zones,
            });
        }
        Ok(Self(tokens))
    }

    /// The token in `headers` must exist (else 401), have `scope` (else 403) and, for a zone,
    /// cover it (else 403). Returns the token's name (for logs).
    pub fn check(
        &self,
        headers: &HeaderMap,
        scope: TokenScope,
        zone: Option<&Name>,
    ) -> Result<String, ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthorized("an Authorization: Bearer <token> header is needed")
            })?;
        let digest = crate::digest::sha256(&[presented.trim().as_bytes()]);
        // Compare every token in full: the time taken does not tell which one matched.
        let mut found = None;
        for t in &self.0 {
            let same = t
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                found = Some(t);
            }
        }
        let token = found.ok_or_else(|| ApiError::unauthorized("unknown token"))?;
        if token.scope < scope {
            return Err(ApiError::forbidden(format!(
                "token {} has read scope only",
                token.name
            )));
        }
        if let (Some(zones), Some(zone)) = (&token.zones, zone)
            && !zones.contains(zone)
        {
            return Err(ApiError::forbidden(format!(
                "token {} may not touch zone {zone}",
                token.name
            )));
        }
        Ok(token.name.clone())
    }

    /// Whether the token (already checked) may see `zone`, for listings.
    pub fn covers(&self, headers: &HeaderMap, zone: &Name) -> bool {
        self.check(headers, TokenScope::Read, Some(zone)).is_ok()
    }
}

/// A zone name from a URL or config: absolute, lower case.
pub fn parse_zone(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text)
        .map_err(|e| format!("{text:?} is not a zone name: {e}"))?
        .to_lowercase();
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sha256: Option<String>, env: Option<&str>, scope: TokenScope) -> TokenConfig {
        TokenConfig {
            name: "t".into(),
            sha256,
            env: env.map(Into::into),
            scope,
            zones: Some(vec!["example.test".into()]),
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn hashed_and_environment_tokens() {
        let env = |var: &str| (var == "MERIDIAN_TEST_TOKEN_AUTH").then(|| "from-env".to_owned());
        let tokens = Tokens::from_config_with(
            &[
                config(Some(hash_token("from-config")), None, TokenScope::Write),
                config(None, Some("MERIDIAN_TEST_TOKEN_AUTH"), TokenScope::Read),
            ],
            env,
        )
        .unwrap();
        let zone = parse_zone("example.test").unwrap();
        let other = parse_zone("other.test").unwrap();
        assert!(
            tokens
                .check(&bearer("from-config"), TokenScope::Write, Some(&zone))
                .is_ok()
        );
        assert!(
            tokens
                .check(&bearer("from-env"), TokenScope::Read, Some(&zone))
                .is_ok()
        );
        let status = |r: Result<String, ApiError>| r.unwrap_err().status.as_u16();
        assert_eq!(
            status(tokens.check(&bearer("from-env"), TokenScope::Write, Some(&zone))),
            403
        );
        assert_eq!(
            status(tokens.check(&bearer("from-config"), TokenScope::Write, Some(&other))),
            403
        );
        assert_eq!(
            status(tokens.check(&bearer("nope"), TokenScope::Read, None)),
            401
        );
        assert_eq!(
            status(tokens.check(&HeaderMap::new(), TokenScope::Read, None)),
            401
        );
        assert!(
            Tokens::from_config(&[config(None, Some("MERIDIAN_UNSET_VAR_X"), TokenScope::Read)])
                .is_err()
        );
        assert!(
            Tokens::from_config(&[config(Some("abc".into()), None, TokenScope::Read)]).is_err()
        );
    }
}
