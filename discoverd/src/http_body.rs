//! Reading another service's HTTP answer with a size limit (Ironic,
//! Keystone, and ironic-discoverd itself for the client library): every
//! external input has one.

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection failed or closed mid-body: worth a retry.
    #[error("failed to read the response: {0}")]
    Read(#[from] reqwest::Error),
    /// Larger than the caller's limit: not the service we expect.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

/// The whole body of `resp`, or an error once it passes `max` bytes.
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
