//! Delivery: [`Webhooks`] POSTs a message to one webhook, retrying with
//! exponential backoff until it is accepted (2xx), refused for good (a 4xx
//! other than 408 and 429) or has failed for `give_up_after`; [`Outbox`]
//! runs one saga's deliveries in the background and hands back the events
//! that record their outcomes.

use super::message::Message;
use super::{Error, Settings};
use crate::saga::{Event, NoticeKind, State};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The configured webhooks and the HTTP client that calls them.
#[derive(Debug)]
pub struct Webhooks {
    /// The URLs, by index (the index is what the log records).
    urls: Vec<url::Url>,
    /// The `[notify]` settings: the per-attempt timeout and the retry backoff.
    settings: Settings,
    /// Pooled HTTP client (no redirects: a webhook answers itself).
    client: reqwest::Client,
}

impl Webhooks {
    /// The webhooks `[notify]` configures.
    pub fn new(settings: &Settings) -> Result<Arc<Webhooks>, Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("closeout/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Arc::new(Webhooks {
            urls: settings.webhooks.clone(),
            settings: settings.clone(),
            client,
        }))
    }

    /// How many webhooks are configured (0: notifications are off).
    pub fn count(&self) -> u16 {
        u16::try_from(self.urls.len()).unwrap_or(u16::MAX)
    }

    /// Whether a saga in `state` still owes some webhook a notice.
    pub fn owed(&self, state: &State) -> bool {
        !state.owed_notices(self.count()).is_empty()
    }

    /// The host of webhook `index`: all of its URL the log may hold.
    pub fn host(&self, index: u16) -> String {
        self.urls
            .get(usize::from(index))
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Delivers `message` (notice `notice`) to webhook `index` until it is
    /// accepted or given up; returns the event recording which.
    pub async fn deliver(&self, index: u16, notice: u32, message: &Message) -> Event {
        let kind = message.kind;
        let host = self.host(index);
        let Some(url) = self.urls.get(usize::from(index)) else {
            return abandoned(notice, kind, index, host, 0, "no such webhook".into());
        };
        let started = Instant::now();
        let backoff = self.settings.backoff();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let answer = self
                .client
                .post(url.clone())
                .header("Idempotency-Key", &message.id)
                .json(message)
                .send()
                .await;
            let reason = match answer {
                Ok(r) if r.status().is_success() => {
                    return Event::NotificationSent {
                        notice,
                        kind,
                        webhook: index,
                        host,
                        attempts,
                        status: r.status().as_u16(),
                    };
                }
                Ok(r) => {
                    let status = r.status();
                    let reason = format!("webhook answered {}", status.as_u16());
                    if status.is_client_error() && status != 408 && status != 429 {
                        return abandoned(notice, kind, index, host, attempts, reason);
                    }
                    reason
                }
                // The error's text may contain the URL: keep only its class.
                Err(e) if e.is_timeout() => "webhook timed out".to_string(),
                Err(e) if e.is_connect() => "webhook refused or unreachable".to_string(),
                Err(_) => "webhook connection failed".to_string(),
            };
            let pause = backoff.delay(attempts, 0.0, None);
            if started.elapsed() + pause > backoff.give_up_after {
                return abandoned(notice, kind, index, host, attempts, reason);
            }
            tracing::debug!(webhook = index, attempts, %reason, "notification will be retried");
            tokio::time::sleep(pause).await;
        }
    }
}

fn abandoned(
    notice: u32,
    kind: NoticeKind,
    webhook: u16,
    host: String,
    attempts: u32,
    reason: String,
) -> Event {
    Event::NotificationAbandoned {
        notice,
        kind,
        webhook,
        host,
        attempts,
        reason,
    }
}

/// One saga's deliveries in flight. Dropping it cancels them; what they had
/// not recorded is still owed, and is delivered again after a restart.
#[derive(Debug)]
pub struct Outbox {
    /// The configured webhooks, shared by every saga's outbox.
    webhooks: Arc<Webhooks>,
    /// (notice, webhook) pairs being delivered, so each starts once.
    in_flight: HashSet<(u32, u16)>,
    /// The deliveries; each ends with the event recording its outcome.
    tasks: JoinSet<((u32, u16), Event)>,
    /// Reads the event log's head hash for batch-end messages.
    head: Option<HeadSource>,
}

/// Where a batch-end message's `log_head` comes from (the store's head).
#[derive(Clone)]
pub struct HeadSource(pub Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl std::fmt::Debug for HeadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadSource")
    }
}

impl Outbox {
    /// An idle outbox for one saga.
    pub fn new(webhooks: Arc<Webhooks>) -> Outbox {
        Outbox {
            webhooks,
            in_flight: HashSet::new(),
            tasks: JoinSet::new(),
            head: None,
        }
    }

    /// The same outbox, with batch-end messages carrying the log head that
    /// `head` reads.
    pub fn with_head(self, head: HeadSource) -> Outbox {
        Outbox {
            head: Some(head),
            ..self
        }
    }

    /// Starts delivering whatever `state` owes and is not yet on its way.
    pub fn start_owed(&mut self, state: &State) {
        if self.webhooks.count() == 0 {
            return;
        }
        for (number, notice, hooks) in state.owed_notices(self.webhooks.count()) {
            for hook in hooks {
                if !self.in_flight.insert((number, hook)) {
                    continue;
                }
                let mut message = Message::build(state, number, notice);
                if notice.kind() == crate::saga::NoticeKind::BatchFinished {
                    message.log_head = self.head.as_ref().and_then(|h| (h.0)());
                }
                let webhooks = Arc::clone(&self.webhooks);
                self.tasks.spawn(async move {
                    let event = webhooks.deliver(hook, number, &message).await;
                    ((number, hook), event)
                });
            }
        }
    }

    /// Whether no delivery is running.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The outcome of a finished delivery, if one has finished.
    pub fn try_next(&mut self) -> Option<Event> {
        while let Some(done) = self.tasks.try_join_next() {
            if let Some(event) = self.finished(done) {
                return Some(event);
            }
        }
        None
    }

    /// Waits for the next delivery to finish (forever when none runs).
    pub async fn next(&mut self) -> Event {
        loop {
            match self.tasks.join_next().await {
                Some(done) => {
                    if let Some(event) = self.finished(done) {
                        return event;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn finished(
        &mut self,
        done: Result<((u32, u16), Event), tokio::task::JoinError>,
    ) -> Option<Event> {
        match done {
            Ok((key, event)) => {
                self.in_flight.remove(&key);
                Some(event)
            }
            Err(e) => {
                tracing::error!(error = %e, "a notification delivery task failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Settings;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// A webhook on loopback answering `statuses` in turn (the last one
    /// forever); returns its URL and the count of requests.
    async fn hook(statuses: Vec<u16>) -> (url::Url, Arc<AtomicUsize>) {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/h",
            axum::routing::post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let status = statuses[n.min(statuses.len() - 1)];
                async move { axum::http::StatusCode::from_u16(status).unwrap() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/h?token=t").parse().unwrap(), seen)
    }

    fn webhooks(url: url::Url) -> Arc<Webhooks> {
        Webhooks::new(&Settings {
            webhooks: vec![url],
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            give_up_after: Duration::from_millis(300),
            ..Settings::default()
        })
        .unwrap()
    }

    fn message() -> Message {
        Message {
            id: "s/0".into(),
            kind: NoticeKind::Paused,
            saga_id: "s".into(),
            tenant_id: "t".into(),
            batch_id: None,
            step: Some(1),
            action: "resume".into(),
            action_required: None,
            summary: "paused".into(),
            log_head: None,
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_accepted() {
        let (url, seen) = hook(vec![503, 500, 202]).await;
        let event = webhooks(url).deliver(0, 7, &message()).await;
        assert_eq!(
            event,
            Event::NotificationSent {
                notice: 7,
                kind: NoticeKind::Paused,
                webhook: 0,
                host: "127.0.0.1".into(),
                attempts: 3,
                status: 202
            }
        );
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_abandoned_at_once_and_a_dead_hook_after_give_up() {
        let (url, seen) = hook(vec![403]).await;
        let event = webhooks(url).deliver(0, 1, &message()).await;
        assert!(
            matches!(&event, Event::NotificationAbandoned { attempts: 1, reason, .. } if reason.contains("403")),
            "{event:?}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 1);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dead: url::Url = format!("http://127.0.0.1:{port}/h?token=t")
            .parse()
            .unwrap();
        let event = webhooks(dead).deliver(0, 2, &message()).await;
        match event {
            Event::NotificationAbandoned {
                attempts,
                reason,
                host,
                ..
            } => {
                assert!(attempts > 1, "retried before giving up");
                assert_eq!(host, "127.0.0.1");
                assert!(!reason.contains("token"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
