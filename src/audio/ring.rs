//! The lock-free hand-off between the audio callback and the capture thread.
//!
//! The cpal callback runs on a real-time thread: it must not allocate, lock
//! or log. [`CaptureWriter::write`] only converts samples into a
//! pre-allocated SPSC ring buffer and counts, with one atomic add, whatever
//! did not fit. [`CaptureReader`] drains it on the capture thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Counters shared by both ends of the ring.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Frames (not samples) dropped because the ring was full.
    overrun_frames: AtomicU64,
    /// Frames accepted into the ring.
    written_frames: AtomicU64,
}

impl RingStats {
    pub fn overrun_frames(&self) -> u64 {
        self.overrun_frames.load(Ordering::Relaxed)
    }
    pub fn written_frames(&self) -> u64 {
        self.written_frames.load(Ordering::Relaxed)
    }
}

/// Makes a ring holding `capacity_frames` frames of `channels` interleaved samples.
pub fn capture_ring(capacity_frames: usize, channels: u16) -> (CaptureWriter, CaptureReader) {
    let channels = usize::from(channels.max(1));
    let (producer, consumer) = HeapRb::<f32>::new(capacity_frames * channels).split();
    let stats = Arc::new(RingStats::default());
    (
        CaptureWriter {
            producer,
            channels,
            stats: Arc::clone(&stats),
        },
        CaptureReader {
            consumer,
            channels,
            stats,
        },
    )
}

/// The callback side. Whole frames only: a frame is never split across a drop.
pub struct CaptureWriter {
    producer: HeapProd<f32>,
    channels: usize,
    stats: Arc<RingStats>,
}

impl CaptureWriter {
    /// Copies `data` (interleaved, any cpal sample type) into the ring.
    /// Real-time safe: no allocation, no lock, no I/O.
    pub fn write<T>(&mut self, data: &[T])
    where
        T: cpal::Sample,
        f32: cpal::FromSample<T>,
    {
        let frames = data.len() / self.channels;
        let room = self.producer.vacant_len() / self.channels;
        let accepted = frames.min(room);
        let pushed = self.producer.push_iter(
            data[..accepted * self.channels]
                .iter()
                .map(|s| s.to_sample::<f32>()),
        );
        debug_assert_eq!(pushed, accepted * self.channels);
        self.stats
            .written_frames
            .fetch_add(accepted as u64, Ordering::Relaxed);
        if accepted < frames {
            self.stats
                .overrun_frames
                .fetch_add((frames - accepted) as u64, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

/// The capture-thread side.
pub struct CaptureReader {
    consumer: HeapCons<f32>,
    channels: usize,
    stats: Arc<RingStats>,
}

impl CaptureReader {
    /// Moves everything buffered (whole frames) to `out`; returns frames moved.
    pub fn drain_into(&mut self, out: &mut Vec<f32>) -> usize {
        let available = self.consumer.occupied_len() / self.channels * self.channels;
        let start = out.len();
        out.resize(start + available, 0.0);
        let popped = self.consumer.pop_slice(&mut out[start..]);
        out.truncate(start + popped);
        popped / self.channels
    }

    pub fn stats(&self) -> &Arc<RingStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_consumer_overruns_exactly_and_capture_resumes() {
        let (mut writer, mut reader) = capture_ring(100, 2);
        // 30 callbacks of 8 stereo frames while nobody reads: 240 frames into room for 100.
        let block: Vec<i16> = (0..16).map(|i| i * 1000).collect();
        for _ in 0..30 {
            writer.write(&block);
        }
        assert_eq!(reader.stats().written_frames(), 100, "the ring fills up");
        assert_eq!(reader.stats().overrun_frames(), 240 - 100);

        let mut out = Vec::new();
        assert_eq!(reader.drain_into(&mut out), 100);
        assert_eq!(out.len(), 200);
        assert!(
            (out[2] - 2000.0 / 32768.0).abs() < 1e-6,
            "i16 converted to f32"
        );

        // The consumer is back: nothing more is dropped.
        for _ in 0..5 {
            writer.write(&block);
            out.clear();
            assert_eq!(reader.drain_into(&mut out), 8);
        }
        assert_eq!(reader.stats().overrun_frames(), 140);
        assert_eq!(reader.stats().written_frames(), 140);
    }

    #[test]
    fn a_partly_full_ring_takes_whole_frames_only() {
        let (mut writer, mut reader) = capture_ring(5, 2);
        writer.write(&[0.1f32; 8]); // 4 frames
        writer.write(&[0.2f32; 6]); // 3 frames, room for 1
        assert_eq!(reader.stats().overrun_frames(), 2);
        let mut out = Vec::new();
        assert_eq!(reader.drain_into(&mut out), 5);
        assert_eq!(&out[8..], &[0.2, 0.2]);
    }
}
