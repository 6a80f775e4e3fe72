//! The request body of `POST /chat/completions`: the same conversation the local path
//! renders (one user turn: the audio, then the question; see
//! `emomon_models::chat::audio_question_messages`), with the audio as an `input_audio`
//! item (16 kHz mono 16-bit PCM WAV, base64) and the logprobs each method reads.

use std::io::Cursor;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::audio::TARGET_RATE;

/// The most label tokens vLLM returns through `logprob_token_ids` in one request.
pub const MAX_LABEL_TOKENS: usize = 128;

/// The most alternatives OpenAI-compatible servers return per position (`top_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// What a request asks the server to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask<'a> {
    /// Tokens generated at most (1 for first-token).
    pub max_tokens: usize,
    /// Answers (`n`); more than one only with `temperature`.
    pub n: usize,
    /// `None` = greedy (temperature 0); else the sampling temperature.
    pub temperature: Option<f32>,
    /// Seed of sampled answers.
    pub seed: Option<u64>,
    /// Tokens whose log-probability is wanted at every generated position.
    pub label_tokens: &'a [u32],
}

/// 16 kHz mono float samples as a 16-bit PCM WAV file, base64: what `input_audio`
/// carries. Samples are clamped to [-1, 1].
pub fn wav_base64(samples: &[f32]) -> Result<String, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: TARGET_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut w = hound::WavWriter::new(&mut bytes, spec)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16)?;
    }
    w.finalize()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes.into_inner()))
}

/// The chat completion request for one utterance and question.
///
/// The label tokens go in vLLM's `logprob_token_ids` (every label's exact
/// log-probability at each position); `top_logprobs` asks a server without that
/// extension for its 20 best tokens instead (vLLM ignores it when the ids are given).
/// `return_tokens_as_token_ids` makes vLLM name tokens `token_id:N`, so no text has to
/// be mapped back to ids.
pub fn chat_body(model: &str, wav_b64: &str, question: &str, ask: &Ask<'_>) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": wav_b64, "format": "wav"}},
                {"type": "text", "text": question},
            ],
        }],
        "max_tokens": ask.max_tokens,
        "n": ask.n,
        "temperature": ask.temperature.unwrap_or(0.0),
        "logprobs": true,
        "top_logprobs": MAX_TOP_LOGPROBS,
        "logprob_token_ids": ask.label_tokens,
        "return_tokens_as_token_ids": true,
        "stream": false,
    });
    if let (Some(seed), Some(map)) = (ask.seed, body.as_object_mut()) {
        map.insert("seed".into(), json!(seed));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_is_16k_mono_pcm16() {
        let b64 = wav_base64(&[0.0, 0.5, -1.0, 2.0]).expect("wav");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let r = hound::WavReader::new(Cursor::new(bytes)).expect("reads back");
        assert_eq!(r.spec().sample_rate, 16_000);
        assert_eq!(r.spec().channels, 1);
        assert_eq!(r.spec().bits_per_sample, 16);
        let s: Vec<i16> = r.into_samples().map(|s| s.expect("sample")).collect();
        assert_eq!(s, vec![0, 16384, -32767, 32767]);
    }

    #[test]
    fn body_carries_audio_question_and_label_tokens() {
        let ask = Ask {
            max_tokens: 1,
            n: 1,
            temperature: None,
            seed: None,
            label_tokens: &[5, 9],
        };
        let b = chat_body("m", "QUJD", "Which emotion?", &ask);
        assert_eq!(b["model"], "m");
        let content = &b["messages"][0]["content"];
        assert_eq!(content[0]["type"], "input_audio");
        assert_eq!(content[0]["input_audio"]["format"], "wav");
        assert_eq!(content[1]["text"], "Which emotion?");
        assert_eq!(b["logprob_token_ids"], json!([5, 9]));
        assert_eq!(b["temperature"], 0.0);
        assert!(b.get("seed").is_none());
    }
}
