//! Remote scoring on an OpenAI-compatible server (vLLM): the same token-level scores
//! as the local path, computed from the log-probabilities the server returns.
//!
//! * [`request`] builds `POST /chat/completions` (the audio as an `input_audio` WAV,
//!   then the question; the label tokens in vLLM's `logprob_token_ids`);
//! * [`response`] reads answers and the label tokens' log-probabilities;
//! * [`retry`] decides what is tried again and after how long;
//! * [`client`] is the HTTP side (one reqwest client and tokio runtime shared by all
//!   scorers of a pool);
//! * [`tokenizer`] asks the server for token ids when no model directory is at hand.
//!
//! Log-probabilities are logits minus the position's log-normaliser, so `first-token`
//! scores (a softmax over label logits) are exactly the local ones; the raw `logits`
//! recorded are those log-probabilities (one additive constant per utterance away from
//! the local logits).

pub mod client;
pub mod request;
pub mod response;
pub mod retry;
pub mod scorer;
pub mod tokenizer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use emomon_models::alm::{Architecture, Sampling, default_question};
use emomon_models::hub;
use emomon_models::scorer::{
    FirstTokenScorer, Form, LabelScores, Method, SampleRng, TokenAverageScorer, Verbaliser,
    parse_distribution, sample_index,
};
use emomon_models::tokenizer::{HfTokenizer, TokenText};

use crate::model_scorer::{ModelAnswer, ModelOptions};
pub use client::{Client, RemoteError};
use request::{Ask, MAX_LABEL_TOKENS, chat_body, wav_base64};
use response::{Answer, label_row, parse_completion};
pub use retry::RetryPolicy;
pub use scorer::RemoteScorer;

/// Where and how to reach the server.
#[derive(Clone, PartialEq)]
pub struct RemoteOptions {
    /// API root, e.g. `http://127.0.0.1:8000/v1`.
    pub url: String,
    /// The served model name (`--served-model-name` of `vllm serve`).
    pub model: String,
    /// Bearer token (from `EMOMON_API_KEY`); never logged.
    pub api_key: Option<String>,
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Retries of failed requests.
    pub retry: RetryPolicy,
}

impl RemoteOptions {
    /// Options for `model` served at `url`, the API key from `EMOMON_API_KEY`.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key: std::env::var("EMOMON_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

impl std::fmt::Debug for RemoteOptions {
    /// Shows whether a key is set, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A model served remotely, with the label tokens of its tokenizer.
pub struct RemoteModel {
    client: Arc<Client>,
    served: String,
    device: String,
    method: Method,
    labels: Vec<String>,
    arch: Architecture,
    prompt: Option<String>,
    first_token: FirstTokenScorer,
    token_average: TokenAverageScorer,
    /// Every label's first tokens, ascending: what is asked for at each position.
    readout: Vec<u32>,
    /// Readout token texts → ids, for servers that name tokens by text.
    known: HashMap<String, u32>,
    max_new_tokens: usize,
}

impl std::fmt::Debug for RemoteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModel")
            .field("served", &self.served)
            .field("device", &self.device)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl RemoteModel {
    /// Connects to the server `remote` names for the model and labels `options` ask
    /// for. Label tokens come from `options.model`'s tokenizer when a directory is given,
    /// else from the server's `/tokenize` (which is also the first contact: a server
    /// that is down is reported here, at start).
    pub fn open(options: &ModelOptions, remote: &RemoteOptions) -> anyhow::Result<Self> {
        if options.quantize {
            anyhow::bail!("--quant q8 applies to local models; the server decides its precision");
        }
        if options.adapter.is_some() {
            anyhow::bail!(
                "--adapter is the built-in local model's; it cannot be used with --remote"
            );
        }
        if remote.model.trim().is_empty() {
            anyhow::bail!("--remote needs --remote-model NAME (the name the server serves)");
        }
        let client = Arc::new(Client::new(
            &remote.url,
            remote.api_key.as_deref(),
            remote.timeout,
            remote.retry,
        )?);
        let alm = options.alm_options();
        let (arch, tokenizer): (Architecture, Box<dyn TokenText>) = match &options.model {
            Some(spec) => {
                let dir = hub::resolve_model(spec, hub::cache_dir().as_deref())?;
                let arch = Architecture::detect(&dir)?;
                let tok = HfTokenizer::from_dir(&dir)
                    .with_context(|| format!("{}: no tokenizer.json", dir.display()))??;
                (arch, Box::new(tok))
            }
            None => (
                Architecture::Qwen2Audio,
                Box::new(tokenizer::RemoteTokenizer::new(
                    Arc::clone(&client),
                    &remote.model,
                )),
            ),
        };
        if arch == Architecture::Whisper {
            anyhow::bail!(
                "remote scoring needs a chat audio-language model (Qwen2-Audio, Voxtral, …); \
                 OpenAI-compatible servers serve Whisper for transcription only"
            );
        }
        let verbaliser =
            Verbaliser::new(&alm.labels, &[Form::Plain, Form::Capital], &*tokenizer)
                .with_context(|| format!("cannot map the labels to {}'s tokens", remote.model))?;
        let first_token = FirstTokenScorer::new(verbaliser.clone(), alm.temperature)?;
        let readout = first_token.readout_tokens();
        if readout.len() > MAX_LABEL_TOKENS {
            anyhow::bail!(
                "the labels need {} tokens; vLLM returns at most {MAX_LABEL_TOKENS} per \
                 request: use fewer labels",
                readout.len()
            );
        }
        let mut known = HashMap::new();
        for &t in &readout {
            known.insert(tokenizer.decode(&[t])?, t);
        }
        if options.method != Method::FirstToken && options.max_new_tokens == 0 {
            anyhow::bail!("{} needs --max-new-tokens of at least 1", options.method);
        }
        Ok(Self {
            device: format!("remote: {}", client.host()),
            client,
            served: remote.model.clone(),
            method: options.method,
            labels: alm.labels,
            arch,
            prompt: alm.prompt,
            token_average: TokenAverageScorer::new(verbaliser),
            first_token,
            readout,
            known,
            max_new_tokens: options.max_new_tokens,
        })
    }

    /// The served model name.
    pub fn id(&self) -> &str {
        &self.served
    }

    /// Where scoring happens, as the log and dashboard say: `remote: host:port`.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The configured method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Labels in output order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The question `method` asks: `--prompt`, else the chat default for `method`.
    pub fn question_for(&self, method: Method) -> String {
        self.prompt
            .clone()
            .unwrap_or_else(|| default_question(self.arch, method, &self.labels))
    }

    /// Scores one utterance with `method` and `question`: one answer when greedy, `n`
    /// with `sampling`. Transport failures are errors; an unreadable `text` answer is
    /// an `Err` in its [`ModelAnswer`].
    pub fn answers(
        &self,
        audio: &[f32],
        method: Method,
        question: &str,
        sampling: Option<Sampling>,
    ) -> Result<Vec<ModelAnswer>, RemoteError> {
        let malformed = |message: String| RemoteError::Malformed {
            host: self.client.host().to_string(),
            message,
        };
        let wav = wav_base64(audio).map_err(|e| malformed(format!("cannot encode audio: {e}")))?;
        let generate = method != Method::FirstToken;
        let ask = Ask {
            max_tokens: if generate { self.max_new_tokens } else { 1 },
            n: if generate {
                sampling.map_or(1, |s| s.n)
            } else {
                1
            },
            temperature: sampling.filter(|_| generate).map(|s| s.temperature),
            seed: sampling.filter(|_| generate).map(|s| s.seed),
            label_tokens: &self.readout,
        };
        let body = chat_body(&self.served, &wav, question, &ask);
        let bytes = self
            .client
            .post_json(&self.client.url("/chat/completions"), &body)?;
        let answers = parse_completion(&bytes, &self.known).map_err(malformed)?;
        match method {
            Method::FirstToken => {
                let first = answers.first().and_then(|a| a.positions.first());
                let scores = self
                    .first_token_scores(first.map_or(&[][..], Vec::as_slice))
                    .map_err(malformed)?;
                Ok(match sampling {
                    None => vec![plain(scores)],
                    Some(s) => draws(&scores, question, s).map_err(malformed)?,
                })
            }
            Method::TokenAverage => answers
                .iter()
                .map(|a| {
                    let scores = self.token_average_scores(a).map_err(malformed)?;
                    Ok(ModelAnswer {
                        scores: Ok(scores),
                        generated: Some(a.text.clone()),
                    })
                })
                .collect(),
            Method::Text => Ok(answers
                .into_iter()
                .map(|a| ModelAnswer {
                    scores: parse_distribution(&a.text, &self.labels).map_err(|e| e.to_string()),
                    generated: Some(a.text),
                })
                .collect()),
        }
    }

    /// Scores utterances one after another with the configured method and question.
    pub fn score(&self, audio: &[&[f32]]) -> Result<Vec<ModelAnswer>, RemoteError> {
        let question = self.question_for(self.method);
        let mut out = Vec::with_capacity(audio.len());
        for a in audio {
            out.extend(self.answers(a, self.method, &question, None)?);
        }
        Ok(out)
    }

    /// Scores one utterance under every question (`answers[question][sample]`) and the
    /// wall time.
    pub fn score_ensemble(
        &self,
        audio: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<(Vec<Vec<ModelAnswer>>, Duration), RemoteError> {
        let started = Instant::now();
        let answers = questions
            .iter()
            .map(|q| self.answers(audio, method, q, sampling))
            .collect::<Result<_, _>>()?;
        Ok((answers, started.elapsed()))
    }

    fn first_token_scores(&self, position: &[(u32, f32)]) -> Result<LabelScores, String> {
        let row = label_row(position, &self.readout)?;
        self.warn_below_floor(&row.below_floor);
        self.first_token
            .score_rows(&self.readout, &row.values)
            .map_err(|e| e.to_string())
    }

    /// `token-average` from per-position log-probabilities: each position becomes a
    /// vocabulary row whose softmax gives the label tokens exactly their returned
    /// probabilities, so the local scorer's averaging applies unchanged.
    fn token_average_scores(&self, answer: &Answer) -> Result<LabelScores, String> {
        let mut steps = Vec::with_capacity(answer.positions.len());
        for p in &answer.positions {
            let row = label_row(p, &self.readout)?;
            self.warn_below_floor(&row.below_floor);
            steps.push(vocab_row(&self.readout, &row.values));
        }
        self.token_average
            .score(&steps)
            .map_err(|e| format!("token-average: {e}"))
    }

    /// Says which labels were scored at the floor of a top-k list: their probability
    /// is an upper bound, not a measurement.
    fn warn_below_floor(&self, tokens: &[u32]) {
        if tokens.is_empty() {
            return;
        }
        let labels: Vec<&str> = self
            .first_token
            .verbaliser()
            .label_tokens()
            .iter()
            .filter(|l| l.first_tokens.iter().any(|t| tokens.contains(t)))
            .map(|l| l.label.as_str())
            .collect();
        tracing::warn!(
            server = self.client.host(),
            ?labels,
            "label tokens missing from the server's logprobs: scored at the floor of its \
             top list (an upper bound); serve with vLLM's logprob_token_ids for exact values"
        );
    }
}

/// A full-vocabulary row for [`TokenAverageScorer`]: the label tokens at their
/// log-probabilities, one extra slot holding the remaining mass, `-inf` elsewhere, so
/// the row's log-normaliser is 0 and its softmax is the server's distribution on the
/// labels.
fn vocab_row(readout: &[u32], logprobs: &[f32]) -> Vec<f32> {
    let len = readout.iter().max().map_or(1, |&t| t as usize + 2);
    let mut row = vec![f32::NEG_INFINITY; len];
    for (&t, &lp) in readout.iter().zip(logprobs) {
        row[t as usize] = lp;
    }
    let mass: f64 = logprobs.iter().map(|&lp| f64::from(lp).exp()).sum();
    row[len - 1] = (1.0 - mass).max(0.0).ln() as f32;
    row
}

fn plain(scores: LabelScores) -> ModelAnswer {
    ModelAnswer {
        scores: Ok(scores),
        generated: None,
    }
}

/// `first-token` with sampling, as the local scorer does it
/// (docs/test-time-scaling.md): `n` labels drawn from the label logits with the
/// answer's own seeded stream, each a point mass.
fn draws(scores: &LabelScores, question: &str, s: Sampling) -> Result<Vec<ModelAnswer>, String> {
    (0..s.n)
        .map(|k| {
            let mut rng = SampleRng::for_answer(s.seed, question, k);
            let drawn = sample_index(&scores.logits, s.temperature, &mut rng)
                .ok_or("no finite label logit to sample from")?;
            Ok(plain(LabelScores {
                probs: (0..scores.labels.len())
                    .map(|i| if i == drawn { 1.0 } else { 0.0 })
                    .collect(),
                entropy: 0.0,
                ..scores.clone()
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_row_softmax_is_the_returned_distribution() {
        let readout = [2u32, 5];
        let lps = [(0.25f32).ln(), (0.5f32).ln()];
        let row = vocab_row(&readout, &lps);
        let norm: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
        assert!((norm - 1.0).abs() < 1e-6, "{norm}");
        assert_eq!(row[2], lps[0]);
        assert_eq!(row[5], lps[1]);
        assert!((f64::from(row[6]).exp() - 0.25).abs() < 1e-6);
        assert!(row[0].is_infinite() && row[0] < 0.0);
    }
}
