//! Header checks that run before any decoder sees a file.
//!
//! A decoder trusts the header: it sizes buffers, resamplers and time bases by the
//! sample rate and channel count it reads there. A crafted or corrupt header (0 Hz,
//! 4 GHz, 60,000 channels) then panics inside the decoder or makes the resampler
//! allocate gigabytes. So every field that sizes anything is checked here first,
//! for the containers whose headers are simple to read (WAV/RF64 and FLAC), and
//! again on the decoder's own report for every format ([`check_format`]).

use std::io::Read;
use std::path::Path;

use super::AudioError;

/// Sample rates emomon accepts: 1 kHz (below that nothing is speech) to 384 kHz
/// (the highest rate audio interfaces offer).
pub const SAMPLE_RATES_HZ: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Most channels emomon accepts (a 64-channel array recording is the extreme).
pub const MAX_CHANNELS: usize = 64;

/// Bytes read from the start of a file to find its format chunk.
const HEADER_BYTES: usize = 64 * 1024;

/// Checks a rate and channel count, naming the file and the bad field.
pub fn check_format(path: &Path, sample_rate: u32, channels: usize) -> Result<(), AudioError> {
    let bad = |detail: String| {
        Err(AudioError::BadHeader {
            path: path.to_path_buf(),
            detail,
        })
    };
    if !SAMPLE_RATES_HZ.contains(&sample_rate) {
        return bad(format!(
            "sample rate {sample_rate} Hz is outside {}–{} Hz",
            SAMPLE_RATES_HZ.start(),
            SAMPLE_RATES_HZ.end()
        ));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return bad(format!("{channels} channels (1–{MAX_CHANNELS} supported)"));
    }
    Ok(())
}

/// Reads the first bytes of `file` and checks the header fields of a WAV or FLAC
/// file; other formats pass (the decoder's report is checked after probing).
pub fn check_file(path: &Path, file: &mut impl Read) -> Result<(), AudioError> {
    let mut head = Vec::with_capacity(HEADER_BYTES);
    file.take(HEADER_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|error| AudioError::Open {
            path: path.to_path_buf(),
            error,
        })?;
    check_bytes(path, &head)
}

/// [`check_file`] on bytes already read.
pub fn check_bytes(path: &Path, head: &[u8]) -> Result<(), AudioError> {
    let bad = |detail: &str| AudioError::BadHeader {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    if head.len() >= 12 && matches!(&head[..4], b"RIFF" | b"RF64") && &head[8..12] == b"WAVE" {
        // No complete fmt chunk: nothing sizes anything yet; the decoder refuses it.
        let Some(fmt) = wav_fmt(&head[12..]) else {
            return Ok(());
        };
        if fmt.block_align == 0 || fmt.bits_per_sample == 0 {
            return Err(bad(&format!(
                "block align {} and bits per sample {} must not be 0",
                fmt.block_align, fmt.bits_per_sample
            )));
        }
        return check_format(path, fmt.sample_rate, usize::from(fmt.channels));
    }
    if head.len() >= 4 && &head[..4] == b"fLaC" {
        // STREAMINFO is the first metadata block: 4-byte block header, then 10
        // bytes of block/frame sizes, then 20 bits of rate and 3 of channels − 1.
        let info = head
            .get(8..8 + 18)
            .ok_or_else(|| bad("no STREAMINFO block"))?;
        if head[4] & 0x7f != 0 {
            return Err(bad("the first metadata block is not STREAMINFO"));
        }
        let rate =
            (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | (u32::from(info[12]) >> 4);
        let channels = usize::from((info[12] >> 1) & 0x07) + 1;
        return check_format(path, rate, channels);
    }
    Ok(())
}

/// The fields of a WAV `fmt ` chunk that size anything.
struct WavFmt {
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits_per_sample: u16,
}

/// Walks the RIFF chunks after `WAVE` to the `fmt ` chunk.
fn wav_fmt(mut chunks: &[u8]) -> Option<WavFmt> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    while chunks.len() >= 8 {
        let size = u32_at(chunks, 4)? as usize;
        if &chunks[..4] == b"fmt " {
            let body = chunks.get(8..8 + size.min(chunks.len() - 8))?;
            return Some(WavFmt {
                channels: u16_at(body, 2)?,
                sample_rate: u32_at(body, 4)?,
                block_align: u16_at(body, 12)?,
                bits_per_sample: u16_at(body, 14)?,
            });
        }
        // Chunks are padded to an even length.
        let next = 8usize.checked_add(size)?.checked_add(size % 2)?;
        chunks = chunks.get(next..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PCM WAV header (44 bytes) with the given fields, plus `data`.
    pub(crate) fn wav(rate: u32, channels: u16, bits: u16, data: &[u8]) -> Vec<u8> {
        let align = channels.wrapping_mul(bits / 8);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&rate.wrapping_mul(u32::from(align)).to_le_bytes());
        v.extend_from_slice(&align.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        check_bytes(Path::new("x.wav"), bytes).map_err(|e| e.to_string())
    }

    #[test]
    fn plausible_wav_headers_pass() {
        assert_eq!(check(&wav(16_000, 1, 16, &[0; 8])), Ok(()));
        assert_eq!(check(&wav(44_100, 2, 24, &[])), Ok(()));
        assert_eq!(
            check(b"ID3 not a wav"),
            Ok(()),
            "other formats are the decoder's"
        );
    }

    #[test]
    fn implausible_wav_headers_name_the_field() {
        for (rate, channels, bits, what) in [
            (0, 1, 16, "sample rate 0 Hz is outside 1000–384000 Hz"),
            (1, 1, 16, "sample rate 1 Hz"),
            (u32::MAX, 1, 16, "sample rate 4294967295 Hz"),
            (1 << 31, 1, 16, "sample rate 2147483648 Hz"),
            (16_000, 0, 16, "block align 0"),
            (16_000, 1000, 16, "1000 channels (1–64 supported)"),
            (16_000, 1, 0, "block align 0 and bits per sample 0"),
        ] {
            let err = check(&wav(rate, channels, bits, &[0; 4])).unwrap_err();
            assert!(err.contains(what) && err.starts_with("x.wav"), "{err}");
        }
        let mut cut = wav(16_000, 1, 16, &[]);
        cut.truncate(20);
        assert_eq!(
            check(&cut),
            Ok(()),
            "incomplete: left to the decoder to refuse"
        );
    }

    #[test]
    fn flac_streaminfo_rate_is_checked() {
        // fLaC, STREAMINFO header (last block, 34 bytes), sizes, 44.1 kHz stereo.
        let mut f = b"fLaC\x80\x00\x00\x22".to_vec();
        f.extend_from_slice(&[0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        let rate: u32 = 44_100;
        f.extend_from_slice(&[
            (rate >> 12) as u8,
            (rate >> 4) as u8,
            ((rate & 0xf) << 4) as u8 | (1 << 1),
            0,
        ]);
        f.extend_from_slice(&[0; 20]);
        assert_eq!(check(&f), Ok(()));
        f[18] = 0;
        f[19] = 0;
        f[20] &= 0x0f;
        assert!(check(&f).unwrap_err().contains("sample rate 0 Hz"));
    }
}
