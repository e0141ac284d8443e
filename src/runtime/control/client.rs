//! The CLI's side of the control socket.

use super::{Error, Request, Response};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    /// Responses, one JSON line each.
    reader: BufReader<OwnedReadHalf>,
    /// Requests, one JSON line each.
    writer: OwnedWriteHalf,
    /// The socket path, for messages.
    path: PathBuf,
}

impl Client {
    /// Connects to the daemon's socket; [`Error::NotRunning`] when no daemon
    /// listens there (no file, or a stale one).
    pub async fn connect(path: &Path) -> Result<Client, Error> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    Error::NotRunning {
                        path: path.to_path_buf(),
                    }
                }
                std::io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                    path: path.to_path_buf(),
                },
                _ => Error::Io {
                    path: path.to_path_buf(),
                    source: e,
                },
            })?;
        let (read, writer) = stream.into_split();
        Ok(Client {
            reader: BufReader::new(read),
            writer,
            path: path.to_path_buf(),
        })
    }

    /// Sends one request and waits for its response.
    pub async fn call(&mut self, request: &Request) -> Result<Response, Error> {
        self.send(request).await?;
        self.next().await
    }

    /// Sends one request without waiting for the answer.
    pub async fn send(&mut self, request: &Request) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(request).map_err(|e| Error::Protocol {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.writer.write_all(&line).await.map_err(io)
    }

    /// Reads the next response (an audit is answered by several chunks).
    pub async fn next(&mut self) -> Result<Response, Error> {
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .await
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(Error::Protocol {
                path: self.path.clone(),
                message: "the daemon closed the connection without answering (shutting down?)"
                    .to_string(),
            });
        }
        serde_json::from_str(answer.trim_end()).map_err(|e| Error::Protocol {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}
