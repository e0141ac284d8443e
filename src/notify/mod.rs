//! Webhook notifications: when a saga opens an operator gate, pauses, fails
//! or rolls back, and when a batch finishes, closeout POSTs a JSON
//! [`Message`] to every configured webhook (`[notify]` in the config).
//!
//! Which notifications are owed is part of the saga's state, derived from its
//! events (`saga::State::owed_notices`); a saga's task hands what is owed to
//! its [`Outbox`], which delivers in the background (retrying with backoff,
//! never blocking the saga) and returns one `NotificationSent` or
//! `NotificationAbandoned` event per notice and webhook for the task to
//! record. A crash between a gate opening and its delivery therefore re-sends
//! after restart: delivery is at least once, and [`Message::id`] is stable
//! for the receiver to drop duplicates. [`Batches`] tells which saga records
//! that its batch finished.
//!
//! (systemd readiness and the watchdog are `runtime::systemd`.)

mod batch;
mod config;
mod deliver;
mod message;

pub use batch::{Batches, Tally};
pub use config::Settings;
pub use deliver::{HeadSource, Outbox, Webhooks};
pub use message::{describe, link_free, Message};

/// Why the webhooks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}
