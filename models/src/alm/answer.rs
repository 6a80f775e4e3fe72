//! Scoring, the same for every family: input checks, the `first-token` readout, the
//! generation loop ([`crate::generate`]) with greedy or sampled picks, and prompt
//! ensembles that encode the audio once.

use std::time::Instant;

use super::family::Decoding;
use super::{
    AlmError, AlmScorer, BatchScores, EmotionModel, EnsembleScores, MIN_SAMPLES, SAMPLE_RATE,
    Sampling, UtteranceScore,
};
use crate::generate::{Generated, argmax, generate};
use crate::scorer::{
    LabelScores, Method, ReadoutError, SampleRng, parse_distribution, sample_index,
};
use crate::tokenizer::TokenText;
use crate::whisper_runner::StageTimes;

/// An utterance too short for the audio encoders' convolutions and pooling;
/// `index` is its place in a batch, if any.
pub(crate) fn check_utterance(index: Option<usize>, samples: usize) -> Result<(), AlmError> {
    if samples >= MIN_SAMPLES {
        return Ok(());
    }
    let which = index.map_or("the utterance".to_string(), |i| format!("utterance {i}"));
    Err(AlmError::Invalid(format!(
        "{which} has {samples} samples ({:.3} s); at least {MIN_SAMPLES} (0.1 s at 16 kHz) are needed",
        samples as f64 / SAMPLE_RATE as f64
    )))
}

/// A generating method with no room to generate.
pub(crate) fn check_generation(method: Method, max_new_tokens: usize) -> Result<(), AlmError> {
    if method != Method::FirstToken && max_new_tokens == 0 {
        return Err(AlmError::Invalid(format!(
            "{method} needs at least one generated token (max_new_tokens is 0)"
        )));
    }
    Ok(())
}

/// A softmax temperature that is not finite and positive.
pub(crate) fn check_temperature(t: f32) -> Result<(), AlmError> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(ReadoutError::Temperature(t).into())
    }
}

/// Audio beyond 30 s is ignored by Whisper and Qwen2-Audio (as their processors
/// truncate); Voxtral encodes every 30 s chunk.
impl EmotionModel for AlmScorer {
    fn id(&self) -> &str {
        AlmScorer::id(self)
    }

    fn labels(&self) -> &[String] {
        AlmScorer::labels(self)
    }

    fn method(&self) -> Method {
        self.options.method
    }

    fn natural_batch(&self) -> usize {
        AlmScorer::natural_batch(self)
    }

    fn supports(&self, _method: Method, _ensemble: bool) -> Result<(), AlmError> {
        Ok(())
    }

    fn question_for(&self, method: Method) -> String {
        AlmScorer::question_for(self, method)
    }

    fn score(&self, utterances: &[&[f32]]) -> Result<BatchScores, AlmError> {
        let started = Instant::now();
        for (i, u) in utterances.iter().enumerate() {
            check_utterance(Some(i), u.len())?;
        }
        let mut times = StageTimes::default();
        let method = self.options.method;
        let utterances = if method == Method::FirstToken {
            // Only the label tokens' rows are read (and, where the family can, computed).
            let rows = self.first_token.readout_tokens();
            self.family
                .answer_rows(utterances, &rows, &mut times)?
                .into_iter()
                .map(|(logits, prompt_tokens)| {
                    Ok(UtteranceScore {
                        scores: Ok(self.first_token.score_rows(&rows, &logits)?),
                        generated: None,
                        prompt_tokens,
                    })
                })
                .collect::<Result<Vec<_>, AlmError>>()?
        } else {
            let mut out = Vec::with_capacity(utterances.len());
            for u in utterances {
                let ids = self.family.input_ids(u.len())?;
                let audio = self.family.encode(u, &mut times)?;
                let t = Instant::now();
                let (last, mut decoder) = self.family.prompt_pass(&audio, &ids)?;
                let generated = self.generate(last, decoder.as_mut(), &mut |l| argmax(l))?;
                out.push(self.finish_generated(method, generated, ids.len())?);
                times.decoder += t.elapsed();
            }
            out
        };
        Ok(BatchScores {
            utterances,
            times,
            total: started.elapsed(),
        })
    }

    fn score_ensemble(
        &self,
        utterance: &[f32],
        method: Method,
        questions: &[String],
        sampling: Option<Sampling>,
    ) -> Result<EnsembleScores, AlmError> {
        let started = Instant::now();
        check_utterance(None, utterance.len())?;
        if questions.is_empty() {
            return Err(AlmError::Invalid(
                "no question to ask (empty prompt list)".into(),
            ));
        }
        check_generation(method, self.options.max_new_tokens)?;
        if let Some(s) = sampling {
            if s.n == 0 {
                return Err(AlmError::Invalid(
                    "sampling needs at least one sample".into(),
                ));
            }
            check_temperature(s.temperature)?;
        }
        let mut times = StageTimes::default();
        let audio = self.family.encode(utterance, &mut times)?;
        let mut answers = Vec::with_capacity(questions.len());
        for q in questions {
            let ids = self.family.question_ids(q, utterance.len())?;
            let t = Instant::now();
            let (last, decoder) = self.family.prompt_pass(&audio, &ids)?;
            answers.push(self.answers(method, q, last, decoder.as_ref(), ids.len(), sampling)?);
            times.decoder += t.elapsed();
        }
        Ok(EnsembleScores {
            answers,
            times,
            total: started.elapsed(),
        })
    }
}

impl AlmScorer {
    /// One question's answers from its prompt pass (`last` logits, `decoder` state):
    /// the greedy answer or each sample.
    fn answers(
        &self,
        method: Method,
        question: &str,
        last: Vec<f32>,
        decoder: &dyn Decoding,
        prompt_tokens: usize,
        sampling: Option<Sampling>,
    ) -> Result<Vec<UtteranceScore>, AlmError> {
        if method == Method::FirstToken {
            let scores = self.first_token.score(&last)?;
            let Some(s) = sampling else {
                return Ok(vec![UtteranceScore {
                    scores: Ok(scores),
                    generated: None,
                    prompt_tokens,
                }]);
            };
            return (0..s.n)
                .map(|k| {
                    let mut rng = SampleRng::for_answer(s.seed, question, k);
                    let drawn =
                        sample_index(&scores.logits, s.temperature, &mut rng).ok_or_else(|| {
                            AlmError::Invalid("no finite label logit to sample from".into())
                        })?;
                    let probs = (0..scores.labels.len())
                        .map(|i| if i == drawn { 1.0 } else { 0.0 })
                        .collect();
                    Ok(UtteranceScore {
                        scores: Ok(LabelScores::new(
                            scores.labels.clone(),
                            Method::FirstToken,
                            scores.logits.clone(),
                            probs,
                        )),
                        generated: None,
                        prompt_tokens,
                    })
                })
                .collect();
        }
        let runs = sampling.map_or(1, |s| s.n);
        let mut out = Vec::with_capacity(runs);
        for k in 0..runs {
            let mut rng =
                sampling.map(|s| (SampleRng::for_answer(s.seed, question, k), s.temperature));
            let mut pick = |l: &[f32]| match &mut rng {
                None => argmax(l),
                Some((rng, t)) => sample_index(l, *t, rng).map_or_else(|| argmax(l), |i| i as u32),
            };
            let mut state = decoder.fork();
            let generated = self.generate(last.clone(), state.as_mut(), &mut pick)?;
            out.push(self.finish_generated(method, generated, prompt_tokens)?);
        }
        Ok(out)
    }

    /// An answer of at most `max_new_tokens`, ending at an end-of-generation token.
    fn generate(
        &self,
        first: Vec<f32>,
        decoder: &mut dyn Decoding,
        pick: &mut dyn FnMut(&[f32]) -> u32,
    ) -> Result<Generated, AlmError> {
        generate(
            first,
            self.options.max_new_tokens,
            &self.eos,
            pick,
            &mut |t| decoder.step(t),
        )
    }

    /// Scores a generated answer: `token-average` over the step logits, or `text` by
    /// parsing the decoded answer (end-of-turn tokens dropped).
    fn finish_generated(
        &self,
        method: Method,
        generated: Generated,
        prompt_tokens: usize,
    ) -> Result<UtteranceScore, AlmError> {
        let content: Vec<u32> = generated
            .tokens
            .iter()
            .copied()
            .filter(|t| !self.eos.contains(t))
            .collect();
        let text = self.family.tokenizer().decode(&content)?;
        let steps = &generated.logits;
        let scores = match method {
            Method::TokenAverage => Ok(self.token_average.score(steps)?),
            Method::Text => parse_distribution(&text, &self.options.labels),
            Method::FirstToken => Ok(self.first_token.score(&steps[0])?),
        };
        Ok(UtteranceScore {
            scores,
            generated: Some((generated.tokens, text)),
            prompt_tokens,
        })
    }
}
