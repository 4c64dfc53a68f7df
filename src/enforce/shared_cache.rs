//! The Redis tier of the membership cache (`REDIS_URL`). Optional and never required: while Redis is
//! unreachable every call returns at once as a miss, and the in-process tier carries on alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// How long a cache read may take before it counts as a miss.
const READ_BUDGET: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct SharedCache {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    connection: OnceCell<ConnectionManager>,
    healthy: AtomicBool,
}

impl SharedCache {
    /// Connects in the background (retrying), so start-up never waits for Redis.
    /// Keys are `<namespace>:member:<channel>:<user>`.
    pub fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL: {e}"))?;
        let inner = Arc::new(Inner {
            namespace: namespace.to_string(),
            connection: OnceCell::new(),
            healthy: AtomicBool::new(false),
        });
        // Held weakly: the connector ends once connected or once the cache is dropped.
        let background = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(250);
            loop {
                let connected = ConnectionManager::new(client.clone()).await;
                let Some(cache) = background.upgrade() else {
                    return;
                };
                match connected {
                    Ok(manager) => {
                        // Only this task sets it, once.
                        let _ = cache.connection.set(manager);
                        cache.healthy.store(true, Ordering::Relaxed);
                        tracing::info!("membership cache: Redis tier connected");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "membership cache: Redis unreachable; using the in-process tier only");
                        drop(cache);
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        Ok(Self { inner })
    }

    pub async fn get(&self, channel: i64, user: i64) -> Option<bool> {
        let mut connection = self.inner.connection.get()?.clone();
        let read = connection.get::<_, Option<String>>(self.key(channel, user));
        match tokio::time::timeout(READ_BUDGET, read).await {
            Ok(Ok(value)) => {
                self.inner.healthy.store(true, Ordering::Relaxed);
                value.map(|v| v == "1")
            }
            Ok(Err(error)) => {
                self.unhealthy(&error.to_string());
                None
            }
            Err(_) => None,
        }
    }

    pub async fn put(&self, channel: i64, user: i64, subscribed: bool, ttl: Duration) {
        let Some(connection) = self.inner.connection.get() else {
            return;
        };
        let mut connection = connection.clone();
        let value = if subscribed { "1" } else { "0" };
        let write =
            connection.set_ex::<_, _, ()>(self.key(channel, user), value, ttl.as_secs().max(1));
        match tokio::time::timeout(READ_BUDGET * 4, write).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.unhealthy(&error.to_string()),
            Err(_) => {}
        }
    }

    fn key(&self, channel: i64, user: i64) -> String {
        format!("{}:member:{channel}:{user}", self.inner.namespace)
    }

    fn unhealthy(&self, error: &str) {
        // Log the transition only, not every failed call.
        if self.inner.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error,
                "membership cache: Redis tier failing; the in-process tier carries on"
            );
        }
    }
}
