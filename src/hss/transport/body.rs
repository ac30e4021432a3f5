//! Reading an answer's body with a ceiling: memory stays bounded whatever a server sends or
//! claims. (Time is bounded by each client's total timeout, which covers the body too.)

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// The body went past the ceiling; it was not read to the end.
    TooLarge { limit: usize },
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// Reads `resp`'s body, at most `limit` bytes. A `Content-Length` above the limit is refused
/// before a byte is read.
pub async fn read_capped(
    resp: &mut reqwest::Response,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    if resp
        .content_length()
        .is_some_and(|claimed| claimed > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
