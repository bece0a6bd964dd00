//! Frames: `u32` little-endian payload length, then a postcard-encoded `Vec<M>`. The limit is
//! checked on the length prefix, before anything is allocated.

use serde::{de::DeserializeOwned, Serialize};

/// Default largest frame accepted (1 GiB); `GT_MAX_FRAME` overrides it.
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    TooLarge { len: usize, max: usize },
    /// The payload is not a valid batch.
    Malformed(String),
}

impl std::error::Error for FrameError {}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

/// Appends one frame holding `msgs` to `out`.
pub fn encode_batch<M: Serialize>(msgs: &[M], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let buf = std::mem::take(out);
    let mut buf = postcard::to_extend(msgs, buf).expect("encoding into a Vec cannot fail");
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    *out = buf;
}

/// Reads the length prefix, checking it against `max`.
pub fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes a frame payload (without its prefix) into its messages.
pub fn decode_batch<M: DeserializeOwned>(payload: &[u8]) -> Result<Vec<M>, FrameError> {
    let (msgs, rest): (Vec<M>, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(msgs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::ClientMsg;
    use gt_core::{ReqId, TensorId};

    #[test]
    fn round_trip_and_limits() {
        let msgs = vec![
            ClientMsg::Free { id: TensorId(3) },
            ClientMsg::Sync { req: ReqId(9) },
        ];
        let mut buf = Vec::new();
        encode_batch(&msgs, &mut buf);
        let len = frame_len(buf[..4].try_into().unwrap(), 1024).unwrap();
        assert_eq!(len, buf.len() - 4);
        let back: Vec<ClientMsg> = decode_batch(&buf[4..]).unwrap();
        assert_eq!(back, msgs);
        assert!(matches!(
            frame_len(buf[..4].try_into().unwrap(), 2),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for seed in 0u64..2000 {
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let bytes: Vec<u8> = (0..(seed % 64))
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_batch::<ClientMsg>(&bytes);
            let _ = decode_batch::<crate::msg::WorkerMsg>(&bytes);
        }
    }
}
