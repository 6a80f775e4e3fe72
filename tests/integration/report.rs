//! `emomon report` on the sample session log: a self-contained HTML page with
//! every plot and table, an SVG of the plots, and clear errors for bad input.

use crate::run_common;

use std::path::{Path, PathBuf};

use emomon::report::svg::label_colour;
use emomon::session_log::{self, Record};
use run_common::emomon;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/sample.jsonl")
}

fn report(log: &Path, out: &Path) -> std::process::Output {
    emomon()
        .arg("report")
        .arg(log)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

/// The `<svg class="plot {kind}">` element of the HTML report (the first of that kind).
fn plot<'a>(html: &'a str, kind: &str) -> &'a str {
    html.split(&format!("<svg class=\"plot {kind}\""))
        .nth(1)
        .and_then(|s| s.split("</svg>").next())
        .unwrap_or_else(|| panic!("no {kind} plot"))
}

/// The contents of the `<text>` elements, in order.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
        .filter_map(|rest| rest.split("</text>").next())
        .map(str::trim)
        .collect()
}

#[test]
fn html_report_of_the_sample_has_the_plots_tables_and_markers() {
    let log = session_log::read(&sample()).unwrap();
    let utterances = log
        .entries
        .iter()
        .filter(|e| matches!(e.entry.record, Record::Utterance(_)))
        .count();
    let markers = log
        .entries
        .iter()
        .filter(|e| matches!(e.entry.record, Record::Marker(_)))
        .count();
    let labels = log.session_start().unwrap().labels.clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let run = report(&sample(), &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();

    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // The plots, inline.
    for plot in ["emotions", "decayed", "ambiguity", "prosody"] {
        assert!(
            html.contains(&format!("<svg class=\"plot {plot}\"")),
            "no {plot} plot"
        );
    }
    assert_eq!(html.matches("<svg class=\"plot prosody\"").count(), 4);
    // Every utterance is a stacked column, every label a layer of it (one rect per
    // utterance in the label's colour, plus the colour key's swatch).
    let emotions = plot(&html, "emotions");
    for (i, l) in labels.iter().enumerate() {
        let fill = format!("fill=\"{}\"", label_colour(l, i).to_ascii_uppercase());
        assert_eq!(
            emotions.matches(&fill).count(),
            utterances + 1,
            "{l} {fill}"
        );
        assert!(
            texts(emotions).contains(&l.as_str()),
            "{l} in the colour key"
        );
    }
    // The decayed distribution: one stacked area per label.
    assert_eq!(
        plot(&html, "decayed").matches("<polygon").count(),
        labels.len()
    );
    // Ambiguity: one entropy dot per utterance (plus the key's), the rolling entropy
    // as one line through every utterance end (plus the key's).
    let ambiguity = plot(&html, "ambiguity");
    assert_eq!(ambiguity.matches("<circle").count(), utterances + 1);
    let rolling: Vec<&str> = ambiguity
        .split("<polyline")
        .skip(1)
        .filter(|p| p.contains("stroke=\"#C0392B\""))
        .collect();
    assert_eq!(rolling.len(), 2);
    let points = |p: &str| {
        p.split("points=\"").nth(1).map_or(0, |r| {
            r.split('"').next().unwrap().split_whitespace().count()
        })
    };
    assert_eq!(points(rolling[0]).max(points(rolling[1])), utterances);
    for key in [
        "utterance entropy",
        "rolling entropy",
        "rolling top-2 margin",
    ] {
        assert!(texts(ambiguity).contains(&key), "{key}");
    }
    // Titles and axes: session time in m:ss, percentages on the stacked plots.
    for title in [
        "Emotions per utterance (stacked probabilities)",
        "Rolling distribution (time-decayed, half-life 20 s)",
        "Ambiguity over time",
        "Prosody: F0 median (Hz)",
        "Prosody: Pause ratio",
    ] {
        assert!(texts(&html).contains(&title), "{title}");
    }
    for tick in ["00:00", "01:00", "03:30", "0%", "100%"] {
        assert!(texts(emotions).contains(&tick), "tick {tick}");
    }
    // Markers (a dashed line topped by ▲) on each of the 7 time plots, and in
    // their own table.
    assert!(markers > 0);
    assert_eq!(
        texts(&html).iter().filter(|t| **t == "▲").count(),
        7 * markers
    );
    assert!(html.contains("<table class=\"markers\">"));
    // Summary per label (every label, every window) and per consecutive window.
    assert!(html.contains("<table class=\"per-label\">"));
    for l in &labels {
        assert!(html.contains(&format!("</span>{l}</td>")), "{l} row");
    }
    for col in ["Whole session", "Time-decayed", "Last 30 s", "Last 2 min"] {
        assert!(html.contains(col), "{col} column");
    }
    assert!(html.contains("<table class=\"per-window\">"));
    assert!(html.contains("<table class=\"changes\">"));
    // Self-contained: no scripts, no external resources.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("href="));
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http"));
}

#[test]
fn svg_report_is_one_standalone_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots.svg");
    let run = report(&sample(), &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<?xml"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert!(svg.trim_end().ends_with("</svg>"));
    let texts = texts(&svg);
    assert!(texts.contains(&"emomon session sample.jsonl"), "{texts:?}");
    for title in [
        "Emotions per utterance (stacked probabilities)",
        "Ambiguity over time",
        "Prosody: F0 median (Hz)",
        "Prosody: Energy mean (dBFS)",
        "Prosody: Speaking rate (syll/s)",
        "Prosody: Pause ratio",
    ] {
        assert!(texts.contains(&title), "{title}");
    }
    assert!(svg.contains("fill=\"#F2C200\""), "happy columns");
}

#[test]
fn bad_input_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let run = report(&missing, &dir.path().join("r.html"));
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("nope.jsonl"));

    let bad = dir.path().join("bad.jsonl");
    let mut text = std::fs::read_to_string(sample()).unwrap();
    text.insert_str(text.find('\n').unwrap() + 1, "{not json}\n");
    std::fs::write(&bad, text).unwrap();
    // A bad line is skipped and named (issue 18: one bad line no longer costs the
    // whole log); --strict refuses the log at that line instead.
    let run = report(&bad, &dir.path().join("r.html"));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("bad.jsonl: line 2: malformed record"), "{err}");
    let run = emomon()
        .arg("report")
        .arg(&bad)
        .args(["--strict", "-o"])
        .arg(dir.path().join("r.html"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("bad.jsonl:2"), "{err}");

    let run = report(&sample(), &dir.path().join("r.pdf"));
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("r.pdf"));

    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let run = report(&sample(), &blocker.join("r.html"));
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("cannot write") && err.contains("a-file"),
        "{err}"
    );
}

#[test]
fn png_report_is_a_png_of_the_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots.png");
    let run = report(&sample(), &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, right after the signature and chunk header.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(width, 960);
    assert!(height > 1000, "{height}");
    // Decodes, and the label colours are in it (the stacked plots were drawn).
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut pixels).unwrap();
    let has = |rgb: [u8; 3]| pixels.chunks(3).any(|p| p == rgb);
    assert!(has([0xf2, 0xc2, 0x00]), "happy yellow");
    assert!(has([0x3b, 0x6f, 0xd8]), "sad blue");
    assert!(has([0xd8, 0x3b, 0x3b]), "angry red");
    // The title was rasterised: dark pixels in the title strip (36 px, white
    // background otherwise).
    let dark = pixels[..960 * 36 * 3]
        .chunks(3)
        .filter(|p| p.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 200, "{dark} dark pixels of title text");
}

/// Issue 17: a session that tracked speakers gets one column pair per speaker, each
/// aggregated on its own: a calm therapist (S1) and a sad client (S2) alternate, and
/// neither track holds any of the other's emotion. A session without speakers has no
/// such table.
#[test]
fn per_speaker_tracks_do_not_bleed_into_each_other() {
    let start = std::fs::read_to_string(sample())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let labels = r#"["neutral","happy","sad","angry","fear","disgust","surprise"]"#;
    let mut log = vec![start];
    let mut t = 1.0;
    for id in 1..=6u64 {
        let (speaker, probs) = if id % 2 == 1 {
            ("S1", "[0.9,0.1,0,0,0,0,0]")
        } else {
            ("S2", "[0.2,0,0.8,0,0,0,0]")
        };
        log.push(format!(
            r#"{{"schema":2,"t_s":{e},"type":"utterance","id":{id},"start_s":{t},"end_s":{e},"labels":{labels},"probs":{probs},"logits":[],"method":"first-token","model":"synthetic-fixture","latency_ms":100.0,"speaker":"{speaker}"}}"#,
            e = t + 2.0
        ));
        t += 3.0;
    }
    log.push(format!(
        r#"{{"schema":2,"t_s":{t},"type":"session_end","utterances":6,"dropped_samples":0,"skipped_utterances":0,"reason":"user quit"}}"#
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.jsonl");
    std::fs::write(&path, log.join("\n") + "\n").unwrap();
    let out = dir.path().join("two.html");
    let run = report(&path, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    let table = html
        .split("<table class=\"per-speaker\">")
        .nth(1)
        .and_then(|s| s.split("</table>").next())
        .expect("a per-speaker table");
    assert!(
        table.contains(
            "<th>S1 session</th><th>S1 decayed</th><th>S2 session</th><th>S2 decayed</th>"
        ),
        "{table}"
    );
    let row = |label: &str| {
        table
            .split("</span>")
            .find_map(|r| r.strip_prefix(&format!("{label}</td>")))
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no {label} row in {table}"))
            .to_string()
    };
    // Session means: S1 90 % neutral and no sadness; S2 80 % sad, 20 % neutral.
    assert!(
        row("neutral").starts_with("<td>90.0%</td>"),
        "{}",
        row("neutral")
    );
    assert!(
        row("sad").starts_with("<td>0.0%</td><td>0.0%</td><td>80.0%</td><td>80.0%</td>"),
        "{}",
        row("sad")
    );
    assert!(table.contains("<td colspan=\"2\">3, 00:06</td>"), "{table}");
    assert!(
        table.contains("<td colspan=\"2\">neutral</td><td colspan=\"2\">sad</td>"),
        "{table}"
    );

    // One emotions plot per speaker, each drawing only that speaker's utterances: S1's
    // columns start where S2's do not (both on the session's time axis).
    let columns = |speaker: &str| -> std::collections::BTreeSet<String> {
        let svg = html
            .split("<svg class=\"plot emotions speaker\"")
            .find(|s| s.contains(&format!("{speaker}: emotions per utterance")))
            .and_then(|s| s.split("</svg>").next())
            .unwrap_or_else(|| panic!("no emotions plot for {speaker}"));
        // Not columns: the background (at x 0) and the colour key's swatches (at y 7).
        svg.split("<rect ")
            .skip(1)
            .filter(|r| !r.contains(" y=\"7\"") && !r.starts_with("x=\"0\" "))
            .filter_map(|r| r.split("x=\"").nth(1)?.split('"').next().map(String::from))
            .collect()
    };
    let (s1, s2) = (columns("S1"), columns("S2"));
    assert_eq!((s1.len(), s2.len()), (3, 3), "{s1:?} {s2:?}");
    assert!(s1.is_disjoint(&s2), "{s1:?} {s2:?}");

    // One rolling (time-decayed) plot per speaker, of that speaker's own track: S1's
    // holds no sadness and 9 parts neutral to 1 happy, S2's 4 parts sad to 1 neutral,
    // wherever drawn (areas of the stacked polygons by label colour, to the pixel
    // rounding of the SVG), while the session's rolling plot mixes them.
    let (s1, s2) = (
        stacked_areas(&html, "decayed speaker", "S1: rolling distribution"),
        stacked_areas(&html, "decayed speaker", "S2: rolling distribution"),
    );
    let area = |areas: &std::collections::BTreeMap<String, f64>, colour: &str| {
        areas.get(colour).copied().unwrap_or(0.0)
    };
    let (neutral, happy, sad) = ("#9e9e9e", "#f2c200", "#3b6fd8");
    assert!(
        area(&s1, neutral) > 0.0 && area(&s2, sad) > 0.0,
        "{s1:?} {s2:?}"
    );
    assert!(
        area(&s1, sad) < 1e-6 && area(&s2, happy) < 1e-6,
        "{s1:?} {s2:?}"
    );
    assert!(
        (area(&s1, neutral) / area(&s1, happy) / 9.0 - 1.0).abs() < 0.1,
        "{s1:?}"
    );
    assert!(
        (area(&s2, sad) / area(&s2, neutral) / 4.0 - 1.0).abs() < 0.1,
        "{s2:?}"
    );
    let mixed = stacked_areas(&html, "decayed\"", "Rolling distribution");
    assert!(
        area(&mixed, sad) > 0.0 && area(&mixed, happy) > 0.0,
        "{mixed:?}"
    );

    // This log's start record predates the recorded speaker setup.
    assert!(
        html.contains("<th>Speakers</th><td>told apart; how is not recorded"),
        "{html}"
    );

    let plain = dir.path().join("sample.html");
    assert!(report(&sample(), &plain).status.success());
    let plain = std::fs::read_to_string(plain).unwrap();
    assert!(!plain.contains("Per speaker"));
    assert!(plain.contains("<th>Speakers</th><td>not told apart</td>"));

    // A start record that says how: shown in the head table.
    let recorded = log[0].replacen(
        "\"config\":{",
        "\"config\":{\"speakers\":{\"mode\":\"cluster\",\"max\":2,\"new_speaker_below\":0.75},",
        1,
    );
    assert_ne!(
        recorded, log[0],
        "the sample's start record has a config object"
    );
    let with_setup = dir.path().join("setup.jsonl");
    std::fs::write(
        &with_setup,
        [recorded.as_str()]
            .into_iter()
            .chain(log[1..].iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )
    .unwrap();
    let out = dir.path().join("setup.html");
    assert!(report(&with_setup, &out).status.success());
    assert!(
        std::fs::read_to_string(out).unwrap().contains(
            "<th>Speakers</th><td>online clustering into at most 2 speakers (a new one below cosine 0.75)</td>"
        )
    );
}

/// Area of each filled polygon of the `<svg class="plot {class}` whose text holds `title`,
/// summed by fill colour (lower-case `#rrggbb`; shoelace formula, px²).
fn stacked_areas(html: &str, class: &str, title: &str) -> std::collections::BTreeMap<String, f64> {
    let svg = html
        .split(&format!("<svg class=\"plot {class}"))
        .skip(1)
        .find(|s| s.split("</svg>").next().is_some_and(|s| s.contains(title)))
        .and_then(|s| s.split("</svg>").next())
        .unwrap_or_else(|| panic!("no {class} plot titled {title:?}"));
    let mut areas = std::collections::BTreeMap::new();
    for polygon in svg.split("<polygon ").skip(1) {
        let attr = |name: &str| {
            polygon
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
        };
        let (Some(points), Some(fill)) = (attr("points"), attr("fill")) else {
            continue;
        };
        let pts: Vec<(f64, f64)> = points
            .split_whitespace()
            .filter_map(|xy| {
                let (x, y) = xy.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect();
        let twice: f64 = pts
            .iter()
            .zip(pts.iter().cycle().skip(1))
            .map(|(a, b)| a.0 * b.1 - b.0 * a.1)
            .sum();
        *areas.entry(fill.to_ascii_lowercase()).or_insert(0.0) += twice.abs() / 2.0;
    }
    areas
}
