//! Remote scoring (`--remote`) against an in-process HTTP server that replays answers
//! captured from a real vLLM (`scripts/capture_vllm.py`, tests/fixtures/remote/), and
//! the faults a live session meets: the server down at start or killed mid-session,
//! 500s, 429 with Retry-After, slow answers past the timeout, malformed JSON, a label
//! missing from the logprobs. Every utterance ends scored or skipped with a reason.
//!
//! The parity with the real engine itself is `scripts/vllm_e2e` (needs the vLLM venv).

use crate::common;
use crate::pipeline::{accounted, drain, memory, session_audio};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use emomon::model_scorer::{LoadedModel, ModelOptions, open_model, open_scorer};
use emomon::pipeline::{Backpressure, Pipeline, PipelineConfig};
use emomon::remote::{RemoteOptions, RetryPolicy};
use emomon::scoring::Scorer;
use emomon::utterance::Utterance;
use emomon_models::scorer::LabelScores;
use serde_json::Value;

const MODEL: &str = "tiny-qwen2-audio-vllm";
const CLIPS: [&str; 3] = ["00", "02", "05"];
/// The default labels without "surprise", which shares its first tokens ("s", "S") with
/// "sad" in the tiny fixture tokenizer (see scripts/capture_vllm.py).
const LABELS: [&str; 6] = ["neutral", "happy", "sad", "angry", "fear", "disgust"];

fn capture(name: &str) -> Vec<u8> {
    let path = common::repo().join("tests/fixtures/remote").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One answer of the fake server.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            body,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            ..Self::ok(body.as_bytes().to_vec())
        }
    }
}

type Handler = Arc<dyn Fn(usize, &str, &Value) -> Reply + Send + Sync>;

/// An OpenAI-compatible server in a thread: `handler(request index, path, body)`.
/// Plain std sockets (requests parsed by httparse), one thread per connection, no
/// keep-alive: [`kill`](Self::kill) closes the listening socket, so later connections
/// are refused as when a real server dies.
struct FakeServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    auth: Arc<Mutex<Vec<Option<String>>>>,
}

/// Reads one HTTP request: its path, JSON body (`null` if none or not JSON) and
/// `Authorization` header.
fn read_request(stream: &mut TcpStream) -> Option<(String, Value, Option<String>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
            let length = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            let path = req.path.unwrap_or_default().to_string();
            let auth = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned());
            while buf.len() < head + length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = serde_json::from_slice(&buf[head..head + length]).unwrap_or(Value::Null);
            return Some((path, body, auth));
        }
    }
}

impl FakeServer {
    fn start(handler: Handler) -> Self {
        Self::start_on(0, handler)
    }

    fn start_on(port: u16, handler: Handler) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2, auth2) =
            (Arc::clone(&stop), Arc::clone(&requests), Arc::clone(&auth));
        let count = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let (handler, requests, count, auths) = (
                    Arc::clone(&handler),
                    Arc::clone(&requests2),
                    Arc::clone(&count),
                    Arc::clone(&auth2),
                );
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let Some((path, body, auth)) = read_request(&mut stream) else {
                        return;
                    };
                    auths.lock().unwrap().push(auth);
                    requests.lock().unwrap().push((path.clone(), body.clone()));
                    let reply = handler(count.fetch_add(1, Ordering::SeqCst), &path, &body);
                    std::thread::sleep(reply.delay);
                    let mut head = format!(
                        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&reply.body);
                });
            }
            // The listener is dropped here: the port is closed.
        });
        Self {
            port,
            stop,
            thread: Some(thread),
            requests,
            auth,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn chat_requests(&self) -> Vec<Value> {
        let r = self.requests.lock().unwrap();
        r.iter()
            .filter(|(p, _)| p.ends_with("/chat/completions"))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Stops listening: later connections are refused, as when the server is killed.
    fn kill(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn options(url: &str, with_dir: bool) -> ModelOptions {
    ModelOptions {
        model: with_dir.then(|| common::fixture_model(MODEL)),
        labels: Some(LABELS.map(String::from).to_vec()),
        remote: Some(RemoteOptions {
            timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_secs(2),
            },
            api_key: None,
            ..RemoteOptions::new(url, MODEL)
        }),
        ..ModelOptions::default()
    }
}

fn replay(name: &'static str) -> Handler {
    let body = capture(name);
    Arc::new(move |_, _, _| Reply::ok(body.clone()))
}

/// Speech-like audio that needs no shared data (the answers are replayed anyway).
fn utterance(id: u64) -> Arc<Utterance> {
    let samples: Vec<f32> = (0..16_000)
        .map(|i| 0.1 * (i as f32 * 0.05 + id as f32).sin())
        .collect();
    Arc::new(Utterance {
        id,
        start_s: 0.0,
        end_s: 1.0,
        audio_start_s: 0.0,
        samples: samples.into(),
        voiced_s: 1.0,
        rms_dbfs: -23.0,
        peak_dbfs: -20.0,
        split: false,
        channel: None,
    })
}

/// The clip's first 4 s, as scripts/capture_vllm.py sent it.
fn clip_audio(data: &Path, clip: &str) -> Vec<f32> {
    let mut a = common::decode_16k(&data.join(format!("pyaudioanalysis/{clip}.wav")));
    a.truncate(64_000);
    a
}

fn max_shifted_diff(a: &[f32], b: &[f32]) -> f32 {
    let shift = a.iter().zip(b).map(|(x, y)| x - y).sum::<f32>() / a.len() as f32;
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y - shift).abs())
        .fold(0.0, f32::max)
}

/// The captured vLLM answers, read by the remote client, give the label
/// log-probabilities emomon computes locally with the same tiny model on the same
/// clips: equal up to one additive constant per utterance, within 1e-3.
#[test]
fn replayed_vllm_answers_match_local_scores() {
    let Some(data) = common::shared_data("remote::replayed_vllm_answers_match_local_scores") else {
        return;
    };
    let local = open_model(&ModelOptions {
        model: Some(common::fixture_model(MODEL)),
        labels: Some(LABELS.map(String::from).to_vec()),
        ..ModelOptions::default()
    })
    .expect("local model");
    for clip in CLIPS {
        let server = FakeServer::start(replay(Box::leak(
            format!("first-token.{clip}.json").into_boxed_str(),
        )));
        let remote = open_model(&options(&server.url(), true)).expect("remote model");
        assert!(matches!(remote, LoadedModel::Remote(_)));
        let audio = clip_audio(&data, clip);
        let l = local.score(&[&audio]).expect("local").utterances.remove(0);
        let r = remote
            .score(&[&audio])
            .expect("remote")
            .utterances
            .remove(0);
        let (l, r) = (l.scores.expect("local"), r.scores.expect("remote"));
        assert_eq!(l.labels, r.labels);
        let d = max_shifted_diff(&r.logits, &l.logits);
        assert!(
            d < 1e-3,
            "clip {clip}: logits differ by {d} beyond a constant"
        );
        for (p, q) in r.probs.iter().zip(&l.probs) {
            assert!(
                (p - q).abs() < 1e-3,
                "clip {clip}: {:?} vs {:?}",
                r.probs,
                l.probs
            );
        }
        // The request carried the audio, the local question and the label tokens.
        let req = &server.chat_requests()[0];
        let content = &req["messages"][0]["content"];
        assert_eq!(content[0]["type"], "input_audio");
        assert_eq!(
            content[1]["text"],
            "Which emotion does the speaker express: neutral, happy, sad, angry, fear, \
             disgust? Answer with one word."
        );
        assert_eq!(req["max_tokens"], 1);
        assert_eq!(req["logprob_token_ids"].as_array().map(Vec::len), Some(12));
    }
}

/// Without a model directory the label tokens come from the server's `/tokenize`, and
/// they are the tokens the model directory's tokenizer gives.
#[test]
fn label_tokens_from_the_servers_tokenizer() {
    let table: Value = serde_json::from_slice(&capture("tokenize.json")).expect("json");
    let answer = capture("first-token.00.json");
    let handler: Handler = Arc::new(move |_, path, body| {
        if path.ends_with("/tokenize") {
            let ids = &table[body["prompt"].as_str().unwrap_or_default()];
            Reply::ok(
                serde_json::json!({ "tokens": ids })
                    .to_string()
                    .into_bytes(),
            )
        } else if path.ends_with("/detokenize") {
            let text = &table[format!("ids:{}", body["tokens"][0])];
            Reply::ok(
                serde_json::json!({ "prompt": text })
                    .to_string()
                    .into_bytes(),
            )
        } else {
            Reply::ok(answer.clone())
        }
    });
    let server = FakeServer::start(handler);
    let by_server = open_model(&options(&server.url(), false)).expect("opens via /tokenize");
    by_server.score(&[&utterance(0).samples]).expect("scores");
    let by_dir = open_model(&options(&server.url(), true)).expect("opens with the dir");
    by_dir.score(&[&utterance(0).samples]).expect("scores");
    let reqs = server.chat_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0]["logprob_token_ids"], reqs[1]["logprob_token_ids"]);
    assert_eq!(server.requests.lock().unwrap()[0].0, "/tokenize");
}

/// The smallest log-probability of a `top_logprobs` list.
fn floor_of(list: &[Value]) -> f32 {
    list.iter()
        .map(|e| e["logprob"].as_f64().expect("lp") as f32)
        .fold(f32::INFINITY, f32::min)
}

/// The first-token distribution the client reads from `body` (served for any request).
fn scores_from(body: Vec<u8>) -> LabelScores {
    let server = FakeServer::start(Arc::new(move |_, _, _| Reply::ok(body.clone())));
    let m = open_model(&options(&server.url(), true)).expect("model");
    let mut b = m.score(&[&utterance(0).samples]).expect("scores");
    b.utterances.remove(0).scores.expect("distribution")
}

/// A server without `logprob_token_ids` returns its top 20 only: labels outside it are
/// scored at the list's floor (an upper bound), never given zero probability.
#[test]
fn top_logprobs_fallback_puts_missing_labels_at_the_floor() {
    let body = capture("first-token-top.00.json");
    let v: Value = serde_json::from_slice(&body).expect("json");
    let top = v["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        .as_array()
        .expect("top list")
        .clone();
    let floor = floor_of(&top);
    let s = scores_from(body);
    assert!(s.probs.iter().all(|p| *p > 0.0 && p.is_finite()), "{s:?}");
    assert!((s.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    // Each label's logit is a listed value or the floor (log-sum-exp over its two
    // forms): never below the floor.
    assert!(
        s.logits.iter().all(|z| *z >= floor - 1e-6),
        "{:?} floor {floor}",
        s.logits
    );
}

/// A label token missing from vLLM's answer (a server bug, or a truncated list) is
/// scored at the floor of what was returned, not dropped and not zero.
#[test]
fn a_label_missing_from_the_logprobs_is_scored_at_the_floor() {
    let full = capture("first-token.00.json");
    let mut v: Value = serde_json::from_slice(&full).expect("json");
    let list = v["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        .as_array_mut()
        .expect("list");
    // "neutral" is token 293 ("Neutral": 355) in the fixture tokenizer.
    let lp = |list: &[Value], t: &str| {
        list.iter()
            .find(|e| e["token"] == t)
            .and_then(|e| e["logprob"].as_f64())
            .expect("listed") as f32
    };
    let capital = lp(list, "token_id:355");
    list.retain(|e| e["token"] != "token_id:293");
    let floor = floor_of(list);
    let s = scores_from(v.to_string().into_bytes());
    let expected = (f64::from(floor).exp() + f64::from(capital).exp()).ln() as f32;
    assert_eq!(s.labels[0], "neutral");
    assert!((s.logits[0] - expected).abs() < 1e-5, "{s:?} vs {expected}");
    assert!(s.probs.iter().all(|p| *p > 0.0), "{s:?}");
    assert_ne!(s, scores_from(full), "the missing label changed the scores");
}

#[test]
fn token_average_and_text_read_the_generated_answer() {
    for (method, name) in [
        (
            emomon_models::scorer::Method::TokenAverage,
            "token-average.00.json",
        ),
        (emomon_models::scorer::Method::Text, "text.00.json"),
    ] {
        let server = FakeServer::start(replay(name));
        let m = open_model(&ModelOptions {
            method,
            ..options(&server.url(), true)
        })
        .expect("model");
        let s = m
            .score(&[&utterance(0).samples])
            .expect("scores")
            .utterances
            .remove(0);
        let v: Value = serde_json::from_slice(&capture(name)).expect("json");
        assert_eq!(
            s.generated.as_deref(),
            v["choices"][0]["message"]["content"].as_str(),
            "{method}"
        );
        match (method, &s.scores) {
            (emomon_models::scorer::Method::TokenAverage, Ok(d)) => {
                assert!((d.probs.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{d:?}");
            }
            // A random tiny model writes no percentages: reported, not guessed.
            (emomon_models::scorer::Method::Text, r) => {
                if let Err(e) = r {
                    assert!(!e.is_empty());
                }
            }
            (_, r) => panic!("{method}: {r:?}"),
        }
        let req = &server.chat_requests()[0];
        assert_eq!(req["max_tokens"], 16);
    }
}

fn score_one(scorer: &mut Box<dyn Scorer>, id: u64) -> Result<(), String> {
    scorer
        .score(&[utterance(id)])
        .map(|s| assert_eq!(s.len(), 1))
        .map_err(|e| e.0)
}

#[test]
fn a_server_down_at_start_is_a_clear_error_or_a_skip_reason() {
    let url = format!("http://127.0.0.1:{}/v1", closed_port());
    // Without the model directory the first contact is /tokenize, at start.
    let e = open_scorer(&options(&url, false)).err().expect("fails");
    let msg = format!("{e:#}");
    assert!(msg.contains(&url) && msg.contains("cannot reach"), "{msg}");
    // With it, the session starts and each utterance is skipped with the reason.
    let mut scorer = open_scorer(&options(&url, true)).expect("opens offline");
    assert!(
        scorer.device().starts_with("remote: 127.0.0.1:"),
        "{}",
        scorer.device()
    );
    let e = score_one(&mut scorer, 0).expect_err("down");
    assert!(
        e.contains("no answer after 3 tries") && e.contains("cannot reach"),
        "{e}"
    );
}

#[test]
fn server_errors_and_429_are_retried_honouring_retry_after() {
    let ok = capture("first-token.00.json");
    let handler: Handler = Arc::new(move |n, _, _| match n {
        0 => Reply::status(500, "boom"),
        1 => Reply {
            headers: vec![("Retry-After", "1".into())],
            ..Reply::status(429, "slow down")
        },
        _ => Reply::ok(ok.clone()),
    });
    let server = FakeServer::start(handler);
    let mut scorer = open_scorer(&options(&server.url(), true)).expect("scorer");
    let started = Instant::now();
    score_one(&mut scorer, 0).expect("scored on the third try");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(server.chat_requests().len(), 3);
}

#[test]
fn bad_requests_are_not_retried_and_name_the_server_answer() {
    let server = FakeServer::start(Arc::new(|_, _, _| {
        Reply::status(400, r#"{"error": "model `x` does not exist"}"#)
    }));
    let mut scorer = open_scorer(&options(&server.url(), true)).expect("scorer");
    let e = score_one(&mut scorer, 0).expect_err("400");
    assert!(e.contains("400") && e.contains("does not exist"), "{e}");
    assert_eq!(server.chat_requests().len(), 1);
}

#[test]
fn slow_answers_past_the_timeout_are_skipped_with_the_reason() {
    let ok = capture("first-token.00.json");
    let server = FakeServer::start(Arc::new(move |_, _, _| Reply {
        delay: Duration::from_secs(3),
        ..Reply::ok(ok.clone())
    }));
    let mut opts = options(&server.url(), true);
    if let Some(r) = opts.remote.as_mut() {
        r.timeout = Duration::from_millis(500);
    }
    let mut scorer = open_scorer(&opts).expect("scorer");
    let started = Instant::now();
    let e = score_one(&mut scorer, 0).expect_err("timeout");
    assert!(e.contains("no answer within"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn malformed_json_is_an_error_naming_the_answer() {
    let server = FakeServer::start(Arc::new(|_, _, _| Reply::ok(b"{\"choices\": [".to_vec())));
    let mut scorer = open_scorer(&options(&server.url(), true)).expect("scorer");
    let e = score_one(&mut scorer, 0).expect_err("malformed");
    assert!(e.contains("not a chat completion"), "{e}");
}

/// The server is killed mid-session and comes back on the same port: utterances in
/// between are skipped with the reason, later ones are scored again, nothing is lost.
#[test]
fn a_server_killed_mid_session_skips_then_resumes() {
    let ok = capture("first-token.00.json");
    let ok2 = ok.clone();
    let server = FakeServer::start(Arc::new(move |_, _, _| Reply::ok(ok.clone())));
    let port = server.port;
    let mut scorer = open_scorer(&options(&server.url(), true)).expect("scorer");
    let mut fork = scorer.fork().expect("forks share the client");
    score_one(&mut scorer, 0).expect("up");
    server.kill();
    let e = score_one(&mut fork, 1).expect_err("down");
    assert!(e.contains("cannot reach"), "{e}");
    let back = FakeServer::start_on(port, Arc::new(move |_, _, _| Reply::ok(ok2.clone())));
    score_one(&mut scorer, 2).expect("resumed");
    score_one(&mut fork, 3).expect("resumed");
    assert_eq!(back.chat_requests().len(), 2);
}

/// A whole session through the worker pool (2 workers = at most 2 requests in flight)
/// while the server has a 300 ms outage of 503s from its fifth request on: every
/// utterance is scored or skipped with the server's reason, the skip count is exact,
/// and scoring resumes after the outage.
#[test]
fn a_session_against_a_flaky_server_accounts_for_every_utterance() {
    let ok = capture("first-token.00.json");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f, m) = (Arc::clone(&in_flight), Arc::clone(&most));
    let outage = Arc::new(Mutex::new(None::<Instant>));
    let handler: Handler = Arc::new(move |n, _, _| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        f.fetch_sub(1, Ordering::SeqCst);
        let mut since = outage.lock().unwrap();
        if n >= 4 && since.is_none() {
            *since = Some(Instant::now());
        }
        if since.is_some_and(|t| t.elapsed() < Duration::from_millis(300)) {
            return Reply::status(503, "overloaded");
        }
        Reply::ok(ok.clone())
    });
    let server = FakeServer::start(handler);
    let config = PipelineConfig {
        workers: 2,
        score_queue: 64,
        backpressure: Backpressure::Wait,
        ..PipelineConfig::default()
    };
    let scorer = open_scorer(&options(&server.url(), true)).expect("scorer");
    let t = drain(Pipeline::start(config, memory(session_audio(5)), scorer).expect("start"));
    assert!(t.ended && t.capture_error.is_none(), "{t:?}");
    assert_eq!(
        accounted(&t),
        t.segmented,
        "scored + skipped = segmented: {t:?}"
    );
    assert!(t.segmented.len() >= 6, "{t:?}");
    assert!(!t.skipped.is_empty(), "{t:?}");
    assert!(
        t.skipped.iter().all(|(_, why)| why.contains("503")),
        "{:?}",
        t.skipped
    );
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "at most 2 requests in flight"
    );
    let last = t.segmented.last().expect("utterances");
    assert!(
        t.scored.contains(last),
        "scoring resumed after the outage: {t:?}"
    );
}

/// `EMOMON_API_KEY` goes to the server as a bearer token and nowhere else: not into
/// errors, even when the server echoes what it was sent.
#[test]
fn the_api_key_is_sent_as_a_bearer_token_and_never_shown() {
    let server = FakeServer::start(Arc::new(|_, _, _| {
        Reply::status(401, "invalid key: Bearer sk-emomon-test")
    }));
    let mut opts = options(&server.url(), true);
    if let Some(r) = opts.remote.as_mut() {
        r.api_key = Some("sk-emomon-test".into());
    }
    assert!(!format!("{opts:?}").contains("sk-emomon-test"));
    let mut scorer = open_scorer(&opts).expect("scorer");
    let e = score_one(&mut scorer, 0).expect_err("401");
    assert!(e.contains("401") && !e.contains("sk-emomon-test"), "{e}");
    assert_eq!(
        server.auth.lock().unwrap().as_slice(),
        [Some("Bearer sk-emomon-test".to_string())]
    );
}

/// `emomon run --headless --remote` against the replaying server: the session log and
/// stdout name the server (`remote: host:port`), every utterance is scored; with the
/// server down the same session still runs to the end, every utterance logged as
/// skipped with the server's reason, and exits 0.
#[test]
fn a_headless_run_names_the_server_and_survives_it_being_down() {
    let clip = common::repo().join("tests/fixtures/audio/demo.wav");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |url: &str, log: &Path| {
        common::emomon(&[
            "run",
            "--headless",
            "--input",
            &clip.to_string_lossy(),
            "--model",
            &common::fixture_model(MODEL),
            "--labels",
            &LABELS.join(","),
            "--remote",
            url,
            "--remote-model",
            MODEL,
            "--remote-timeout",
            "5",
            "--workers",
            "2",
            "--session-log",
            &log.to_string_lossy(),
        ])
    };
    let records = |log: &Path| -> Vec<Value> {
        std::fs::read_to_string(log)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    };
    let kinds = |r: &[Value]| -> Vec<String> {
        r.iter()
            .map(|r| r["type"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    let server = FakeServer::start(replay("first-token.00.json"));
    let up = dir.path().join("up.jsonl");
    let out = run(&server.url(), &up);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = records(&up);
    let host = format!("remote: 127.0.0.1:{}", server.port);
    assert_eq!(r[0]["device"], host.as_str());
    let scored = kinds(&r).iter().filter(|k| *k == "utterance").count();
    assert!(scored >= 2, "{:?}", kinds(&r));
    assert_eq!(server.chat_requests().len(), scored);
    assert!(!kinds(&r).contains(&"skipped".to_string()));

    let down_url = format!("http://127.0.0.1:{}/v1", closed_port());
    let down = dir.path().join("down.jsonl");
    let out = run(&down_url, &down);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = records(&down);
    let skipped: Vec<&Value> = r.iter().filter(|r| r["type"] == "skipped").collect();
    assert_eq!(
        skipped.len(),
        scored,
        "the same utterances, all accounted for"
    );
    for s in skipped {
        let why = s["reason"].as_str().unwrap_or_default();
        assert!(why.contains("cannot reach"), "{why}");
    }
    assert_eq!(r.last().expect("records")["type"], "session_end");
}
