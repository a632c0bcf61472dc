//! The browser Origin check that stops cross-site WebSocket hijacking: a page on another site
//! must not be able to open a connection with the user's cookies. Requests without an Origin
//! header (servers, mobile apps, SDKs under Node) always pass.

/// Allowed origins, from `server.allowed_origins`.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    any: bool,
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Lower-cased text before the `*` (or the whole origin when there is none).
    prefix: String,
    /// Lower-cased text after the `*`, when the pattern has one (`https://*.example.com`).
    suffix: Option<String>,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        let any = allowed.iter().any(|o| o == "*");
        let patterns = allowed
            .iter()
            .filter(|o| *o != "*")
            .map(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                match o.split_once('*') {
                    Some((prefix, suffix)) => Pattern {
                        prefix: prefix.to_string(),
                        suffix: Some(suffix.to_string()),
                    },
                    None => Pattern {
                        prefix: o,
                        suffix: None,
                    },
                }
            })
            .collect();
        Self { any, patterns }
    }

    /// Whether a request with this Origin header value (None: no header) may connect.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        self.patterns.iter().any(|p| match &p.suffix {
            None => origin == p.prefix,
            Some(suffix) => {
                origin.len() > p.prefix.len() + suffix.len()
                    && origin.starts_with(&p.prefix)
                    && origin.ends_with(suffix.as_str())
                    // The wildcard stands for subdomain labels, never for a scheme or a port.
                    && !origin[p.prefix.len()..origin.len() - suffix.len()].contains(['/', ':'])
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(list: &[&str]) -> OriginPolicy {
        OriginPolicy::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn empty_list_rejects_every_browser_but_not_servers() {
        let p = policy(&[]);
        assert!(!p.allows(Some("https://example.com")));
        assert!(p.allows(None));
    }

    #[test]
    fn exact_and_any() {
        let p = policy(&["https://app.example.com"]);
        assert!(p.allows(Some("https://app.example.com")));
        assert!(p.allows(Some("HTTPS://App.Example.com")));
        assert!(!p.allows(Some("https://evil.com")));
        assert!(!p.allows(Some("http://app.example.com")));
        assert!(policy(&["*"]).allows(Some("https://whatever.io")));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = policy(&["https://*.example.com"]);
        assert!(p.allows(Some("https://a.example.com")));
        assert!(p.allows(Some("https://a.b.example.com")));
        assert!(!p.allows(Some("https://example.com")));
        assert!(!p.allows(Some("https://evil.com/.example.com")));
        assert!(!p.allows(Some("https://evil.com:1.example.com")));
        assert!(!p.allows(Some("https://a.example.com.evil.com")));
    }
}
