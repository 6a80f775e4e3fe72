//! The families agree with each other's contracts: an ensemble of one question is
//! `score`, questions are independent, samples are seeded.

use super::*;

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// 1.5 s of a deterministic tone with noise.
fn audio() -> Vec<f32> {
    let mut seed = 99u32;
    (0..24_000)
        .map(|i| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 16) as f32 / 65_536.0 - 0.5;
            0.3 * (i as f32 * 0.11).sin() + 0.1 * noise
        })
        .collect()
}

fn open(name: &str, method: Method) -> AlmScorer {
    let labels = ["neutral", "happy", "sad", "angry", "fear", "disgust"];
    let options = AlmOptions {
        method,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        max_new_tokens: 5,
        ..AlmOptions::default()
    };
    AlmScorer::open(&fixture(name), options, &Device::flex()).expect("open fixture")
}

fn probs(u: &UtteranceScore) -> Option<Vec<f32>> {
    u.scores.as_ref().ok().map(|s| s.probs.clone())
}

#[test]
fn greedy_ensemble_of_the_own_question_equals_score() {
    let u = audio();
    for name in ["tiny-whisper", "tiny-qwen2-audio", "tiny-voxtral"] {
        for method in Method::ALL {
            let s = open(name, method);
            let q = s.question_for(method);
            assert_eq!(s.question(), q);
            assert_eq!(
                s.question_ids(&q, u.len()).expect("ids"),
                s.input_ids(u.len()).expect("ids"),
                "{name}"
            );
            let plain = s.score(&[&u]).expect("score");
            let ens = s
                .score_ensemble(&u, method, std::slice::from_ref(&q), None)
                .expect("ensemble");
            assert_eq!(ens.answers.len(), 1);
            assert_eq!(ens.answers[0].len(), 1);
            let (a, b) = (&plain.utterances[0], &ens.answers[0][0]);
            // `score` reads first-token logits from the label rows of the output
            // projection only, the ensemble from the whole row: the same numbers up
            // to f32 summation order.
            match (probs(a), probs(b)) {
                (Some(pa), Some(pb)) => {
                    assert_eq!(pa.len(), pb.len(), "{name} {method}");
                    for (x, y) in pa.iter().zip(&pb) {
                        assert!((x - y).abs() < 1e-5, "{name} {method}: {pa:?} vs {pb:?}");
                    }
                }
                (pa, pb) => assert_eq!(pa, pb, "{name} {method}"),
            }
            assert_eq!(a.generated, b.generated, "{name} {method}");
            assert_eq!(a.prompt_tokens, b.prompt_tokens, "{name} {method}");
        }
    }
}

#[test]
fn each_question_of_an_ensemble_equals_asking_it_alone() {
    let u = audio();
    let qs = vec![
        "Which emotion?".to_string(),
        "How does it sound?".to_string(),
    ];
    for name in ["tiny-whisper", "tiny-qwen2-audio"] {
        let s = open(name, Method::TokenAverage);
        let both = s
            .score_ensemble(&u, Method::TokenAverage, &qs, None)
            .expect("ensemble");
        for (i, q) in qs.iter().enumerate() {
            let alone = s
                .score_ensemble(&u, Method::TokenAverage, std::slice::from_ref(q), None)
                .expect("alone");
            assert_eq!(probs(&both.answers[i][0]), probs(&alone.answers[0][0]));
        }
        assert_ne!(
            s.question_ids(&qs[0], u.len()).unwrap(),
            s.question_ids(&qs[1], u.len()).unwrap()
        );
    }
}

#[test]
fn samples_are_reproducible_by_seed() {
    let u = audio();
    let s = open("tiny-whisper", Method::TokenAverage);
    let q = vec![s.question_for(Method::TokenAverage)];
    let run = |seed| {
        let sampling = Sampling {
            n: 4,
            temperature: 1.5,
            seed,
        };
        let e = s
            .score_ensemble(&u, Method::TokenAverage, &q, Some(sampling))
            .expect("sampled");
        assert_eq!(e.answers[0].len(), 4);
        e.answers[0]
            .iter()
            .map(|a| a.generated.clone().expect("generated").0)
            .collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    // Different samples of one run differ too (random weights, temperature 1.5).
    assert!(a.iter().any(|t| t != &a[0]), "{a:?}");

    let f = open("tiny-whisper", Method::FirstToken);
    let sampling = Sampling {
        n: 6,
        temperature: 1.0,
        seed: 3,
    };
    let e = f
        .score_ensemble(&u, Method::FirstToken, &q, Some(sampling))
        .expect("first-token draws");
    for a in &e.answers[0] {
        let p = probs(a).expect("point mass");
        assert_eq!(p.iter().filter(|&&x| x == 1.0).count(), 1, "{p:?}");
        assert_eq!(p.iter().sum::<f32>(), 1.0);
    }
    assert!(
        f.score_ensemble(
            &u,
            Method::FirstToken,
            &q,
            Some(Sampling { n: 0, ..sampling })
        )
        .is_err()
    );
}
