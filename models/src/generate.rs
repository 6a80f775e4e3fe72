//! The one token-generation loop every model family uses (Whisper, Qwen2-Audio,
//! Voxtral, greedy or sampled): the family supplies the prompt's last logits and a
//! step function that feeds one token through its KV cache.

/// The tokens of one generated answer and, for each, the logits it was chosen from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generated {
    /// Generated token ids (the prompt excluded), up to and including the stop token if
    /// one was reached.
    pub tokens: Vec<u32>,
    /// Logits `[vocab]` of the position each token was chosen at.
    pub logits: Vec<Vec<f32>>,
}

/// Generates at most `max_new` tokens from the prompt's last logits `first`: `pick`
/// chooses each token (argmax for greedy), generation ends after a token in `stop`,
/// and `step` feeds a chosen token to the model and returns the next position's
/// logits. No step is taken after the last token, so a family's cache never holds
/// more than it needs.
pub fn generate<E>(
    first: Vec<f32>,
    max_new: usize,
    stop: &[u32],
    pick: &mut dyn FnMut(&[f32]) -> u32,
    step: &mut dyn FnMut(u32) -> Result<Vec<f32>, E>,
) -> Result<Generated, E> {
    let mut out = Generated::default();
    let mut last = first;
    for n in 1..=max_new {
        let next = pick(&last);
        out.tokens.push(next);
        out.logits.push(std::mem::take(&mut last));
        if stop.contains(&next) || n == max_new {
            break;
        }
        last = step(next)?;
    }
    Ok(out)
}

/// Index of the largest value (the first on ties; 0 for an empty slice).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model whose logits after token `t` favour `t + 1`.
    fn after(t: u32) -> Vec<f32> {
        (0..6).map(|i| if i == t + 1 { 1.0 } else { 0.0 }).collect()
    }

    fn run(max_new: usize, stop: &[u32]) -> (Generated, usize) {
        let mut steps = 0;
        let g = generate::<()>(after(0), max_new, stop, &mut |l| argmax(l), &mut |t| {
            steps += 1;
            Ok(after(t))
        })
        .unwrap();
        (g, steps)
    }

    #[test]
    fn stops_after_a_stop_token_or_at_the_limit_without_an_extra_step() {
        let (g, steps) = run(10, &[3]);
        assert_eq!(g.tokens, [1, 2, 3]);
        assert_eq!(g.logits, [after(0), after(1), after(2)]);
        assert_eq!(steps, 2);
        let (g, steps) = run(2, &[]);
        assert_eq!(g.tokens, [1, 2]);
        assert_eq!(steps, 1);
        assert_eq!(run(0, &[]).0, Generated::default());
    }
}
