//! The handshake: the connecting side sends [`Hello`] as its first frame, the accepting side
//! answers [`Welcome`]. A wrong magic, version or token is answered with `Welcome::Rejected` and
//! the connection is closed.

use serde::{Deserialize, Serialize};

/// Bumped on every incompatible change of any message.
pub const PROTOCOL_VERSION: u32 = 1;

/// The bytes every `Hello` starts with, so a stray connection is recognised at once.
pub const MAGIC: [u8; 4] = *b"GTRT";

/// Who is connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A program issuing tensor instructions.
    Client,
    /// A worker offering to execute.
    Worker,
    /// An observer (trace capture, `gt top`).
    Monitor,
    /// Another worker delivering a tensor.
    Peer,
}

/// The first frame of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`MAGIC`].
    pub magic: [u8; 4],
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Who is connecting.
    pub role: Role,
    /// The shared secret, when the server requires one (`GT_TOKEN`).
    pub token: Option<String>,
    /// A worker's address for peer transfers; a client's or peer's free-form name.
    pub info: String,
}

impl Hello {
    /// A hello for `role` with this build's magic and version.
    pub fn new(role: Role, token: Option<String>, info: impl Into<String>) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            role,
            token,
            info: info.into(),
        }
    }

    /// Checks magic, version and token against the server's expectations.
    pub fn validate(&self, expected_token: Option<&str>) -> Result<(), String> {
        if self.magic != MAGIC {
            return Err("not a GT connection (bad magic)".into());
        }
        if self.version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version mismatch: peer speaks {}, this build speaks {PROTOCOL_VERSION}",
                self.version
            ));
        }
        match (expected_token, self.token.as_deref()) {
            (None, _) => Ok(()),
            (Some(want), Some(got)) if want == got => Ok(()),
            (Some(_), Some(_)) => Err("wrong token".into()),
            (Some(_), None) => Err("this server requires a token (set GT_TOKEN)".into()),
        }
    }
}

/// The answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Welcome {
    /// Accepted; `id` is the session id (clients), worker index (workers) or 0.
    Accepted { id: u32, workers: u32 },
    /// Refused, with the reason; the connection closes next.
    Rejected { reason: String },
}
