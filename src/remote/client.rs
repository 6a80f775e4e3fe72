//! The HTTP side: one reqwest client (rustls) on one tokio runtime, shared by every
//! scorer of a worker pool, so N pool workers keep N requests in flight on one
//! connection pool. Scorers are plain threads: they block on the runtime for their
//! request ([`Client::post_json`]).

use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::retry::{RetryPolicy, Verdict, classify_status, parse_retry_after};

/// Why a request gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Every try failed with a retryable error (server down, overloaded, erroring).
    #[error("{host}: no answer after {attempts} tries over {elapsed:.1?}; last: {last}")]
    GaveUp {
        /// Server.
        host: String,
        /// Tries made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last try's error.
        last: String,
    },
    /// The server answered with an error that another try would repeat.
    #[error("{host} answered {status}: {body}")]
    Rejected {
        /// Server.
        host: String,
        /// HTTP status.
        status: u16,
        /// The start of the answer (the server's explanation).
        body: String,
    },
    /// No answer within the timeout (not retried: a live session cannot wait twice).
    #[error("{host}: no answer within {timeout:?} (raise --remote-timeout for slow servers)")]
    Timeout {
        /// Server.
        host: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The answer could not be read.
    #[error("{host}: {message}")]
    Malformed {
        /// Server.
        host: String,
        /// What was wrong.
        message: String,
    },
}

/// A blocking client of one OpenAI-compatible server.
pub struct Client {
    http: reqwest::Client,
    runtime: Option<tokio::runtime::Runtime>,
    base: String,
    host: String,
    auth: Option<HeaderValue>,
    /// The key itself, only to redact it from server answers quoted in errors.
    key: Option<String>,
    retry: RetryPolicy,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    /// Without the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `host[:port]` of a URL, as the dashboard and log show where scoring happens.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    // Credentials in the URL are never shown.
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8000/v1`); `api_key` is
    /// sent as a bearer token and marked sensitive so it never reaches a log.
    pub fn new(
        base: &str,
        api_key: Option<&str>,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!(
                "--remote {base:?} is not an http(s) URL; give the server's API root, e.g. \
                 http://127.0.0.1:8000/v1"
            );
        }
        let auth = api_key
            .map(|k| {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    anyhow::anyhow!("EMOMON_API_KEY holds characters not allowed in an HTTP header")
                })?;
                v.set_sensitive(true);
                anyhow::Ok(v)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("emomon-remote")
            .enable_all()
            .build()?;
        Ok(Self {
            http,
            runtime: Some(runtime),
            host: host_of(&base),
            base,
            auth,
            key: api_key.filter(|k| !k.is_empty()).map(str::to_string),
            retry,
            timeout,
        })
    }

    /// The server's `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API root without a trailing `/v1`: where vLLM serves `/tokenize`.
    pub fn root(&self) -> &str {
        self.base.strip_suffix("/v1").unwrap_or(&self.base)
    }

    /// POSTs `body` to `url` and returns the answer's bytes, retrying as the policy says.
    /// Blocks the calling thread (never call it from async code).
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Vec<u8>, RemoteError> {
        let Some(rt) = &self.runtime else {
            unreachable!("the runtime lives until drop")
        };
        rt.block_on(self.post_with_retries(url, body))
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post_with_retries(&self, url: &str, body: &Value) -> Result<Vec<u8>, RemoteError> {
        let started = Instant::now();
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let retry_after = match self.post_once(url, body).await {
                Ok(bytes) => return Ok(bytes),
                Err(Try::Fatal(e)) => return Err(e),
                Err(Try::Again { why, retry_after }) => {
                    tracing::debug!(attempt, why, "remote request failed; will retry");
                    last = why;
                    retry_after
                }
            };
            if attempt < attempts {
                tokio::time::sleep(self.retry.delay(attempt, retry_after)).await;
            }
        }
        Err(RemoteError::GaveUp {
            host: self.host.clone(),
            attempts,
            elapsed: started.elapsed(),
            last,
        })
    }

    async fn post_once(&self, url: &str, body: &Value) -> Result<Vec<u8>, Try> {
        let mut req = self.http.post(url).json(body);
        if let Some(a) = &self.auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(Try::Fatal(self.timeout_error())),
            Err(e) => {
                return Err(Try::Again {
                    why: format!("cannot reach the server: {}", error_chain(&e)),
                    retry_after: None,
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) if e.is_timeout() => return Err(Try::Fatal(self.timeout_error())),
            Err(e) => {
                return Err(Try::Again {
                    why: format!("the answer was cut off: {}", error_chain(&e)),
                    retry_after: None,
                });
            }
        };
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        let text =
            self.redact(String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned());
        match classify_status(status, retry_after) {
            Verdict::Retry(retry_after) => Err(Try::Again {
                why: format!("HTTP {status}: {text}"),
                retry_after,
            }),
            Verdict::Fail => Err(Try::Fatal(RemoteError::Rejected {
                host: self.host.clone(),
                status,
                body: text,
            })),
        }
    }

    /// `text` without the API key (a server may echo the header it rejected).
    fn redact(&self, text: String) -> String {
        match &self.key {
            Some(k) => text.replace(k.as_str(), "<EMOMON_API_KEY>"),
            None => text,
        }
    }

    fn timeout_error(&self) -> RemoteError {
        RemoteError::Timeout {
            host: self.host.clone(),
            timeout: self.timeout,
        }
    }
}

impl Drop for Client {
    /// The last scorer may be dropped inside the session's async loop, where dropping
    /// a runtime the ordinary way panics.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// One try's failure.
enum Try {
    Again {
        why: String,
        retry_after: Option<Duration>,
    },
    Fatal(RemoteError),
}

/// An error with its causes (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_hides_path_and_credentials() {
        assert_eq!(host_of("http://127.0.0.1:8000/v1"), "127.0.0.1:8000");
        assert_eq!(host_of("https://user:pw@gpu.lab/v1/"), "gpu.lab");
    }

    #[test]
    fn key_is_not_in_debug_output_and_urls_are_checked() {
        let c = Client::new(
            "http://h:1/v1/",
            Some("sk-secret"),
            Duration::from_secs(1),
            RetryPolicy::default(),
        )
        .expect("client");
        assert!(!format!("{c:?}").contains("sk-secret"));
        assert_eq!(c.url("/chat/completions"), "http://h:1/v1/chat/completions");
        assert_eq!(c.root(), "http://h:1");
        assert!(Client::new("h:1", None, Duration::from_secs(1), RetryPolicy::default()).is_err());
    }
}
