//! Typing of each configuration leaf, with a specific message for every way a value can be wrong.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::load::{Layers, Leaf};
use super::*;
use crate::db::DatabaseUrl;

pub(super) fn settings(layers: &Layers, environment: Environment) -> Result<Settings, ConfigError> {
    Ok(Settings {
        environment,
        data_dir: non_empty_path(layers.get("data_dir"))?,
        server: ServerSettings {
            listen: socket_addr(layers.get("server.listen"))?,
            public_url: optional(layers.get("server.public_url"), base_url)?,
            metrics_token: optional(layers.get("server.metrics_token"), secret_text)?,
            role: role(layers.get("server.role"))?,
            trusted_proxies: networks(layers.get("server.trusted_proxies"))?,
        },
        database: DatabaseSettings {
            url: database_url(layers.get("database.url"))?,
            max_connections: integer_in(layers.get("database.max_connections"), 1, 1000)? as u32,
            connect_timeout: seconds(layers.get("database.connect_timeout_s"), 1, 600)?,
        },
        redis: RedisSettings {
            url: optional(layers.get("redis.url"), redis_url)?,
        },
        vault: VaultSettings {
            keys: encryption_keys(layers.get("vault.keys"))?,
        },
        auth: AuthSettings {
            owner_telegram_id: telegram_user_id(layers.get("auth.owner_telegram_id"))?,
            login_bot_token: optional(layers.get("auth.login_bot_token"), bot_token)?,
            session_ttl: Duration::from_secs(
                integer_in(layers.get("auth.session_ttl_h"), 1, 24 * 366)? as u64 * 3600,
            ),
        },
        telegram: TelegramSettings {
            api_url: http_url(layers.get("telegram.api_url"))?,
            mode: telegram_mode(layers)?,
            webhook_check: seconds(layers.get("telegram.webhook_check_s"), 1, 86_400)?,
        },
        fleet: FleetSettings {
            poll_interval: Duration::from_millis(integer_in(
                layers.get("fleet.registry_poll_ms"),
                50,
                60_000,
            )? as u64),
            full_interval: seconds(layers.get("fleet.full_reconcile_s"), 1, 3600)?,
            restart: RestartSettings {
                initial_backoff: Duration::from_millis(integer_in(
                    layers.get("fleet.backoff_initial_ms"),
                    1,
                    600_000,
                )? as u64),
                max_backoff: seconds(layers.get("fleet.backoff_max_s"), 1, 86_400)?,
                stable_after: seconds(layers.get("fleet.stable_after_s"), 1, 86_400)?,
                max_failures: integer_in(layers.get("fleet.max_failures"), 1, 1000)? as usize,
                window: seconds(layers.get("fleet.failure_window_s"), 1, 86_400)?,
            },
        },
        enforce: enforce(layers)?,
        alerts: AlertSettings {
            chat_id: optional(layers.get("alerts.chat_id"), chat_id)?,
            sender: alert_sender(layers.get("alerts.sender"))?,
            every: Duration::from_millis(
                integer_in(layers.get("alerts.check_ms"), 100, 3_600_000)? as u64,
            ),
            settle: seconds(layers.get("alerts.settle_s"), 0, 86_400)?,
        },
        log: LogSettings {
            filter: log_filter(layers.get("log.filter"))?,
            format: log_format(layers.get("log.format"), environment)?,
            store_level: log_level(layers.get("log.store_level"))?,
            retention: Duration::from_secs(
                integer_in(layers.get("log.retention_days"), 1, 3650)? as u64 * 86_400,
            ),
        },
    })
}

fn enforce(layers: &Layers) -> Result<EnforceSettings, ConfigError> {
    let millis = |key: &str, min: i64, max: i64| -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(
            integer_in(layers.get(key), min, max)? as u64,
        ))
    };
    let rate = |key: &str, max: f64| rate_in(layers.get(key), 0.01, max);
    Ok(EnforceSettings {
        membership_ttl: seconds(layers.get("enforce.membership_ttl_s"), 1, 86_400)?,
        negative_ttl: seconds(layers.get("enforce.negative_ttl_s"), 1, 86_400)?,
        policy_refresh: millis("enforce.policy_refresh_ms", 100, 600_000)?,
        admin_ttl: seconds(layers.get("enforce.admin_ttl_s"), 1, 86_400)?,
        check_retries: integer_in(layers.get("enforce.check_retries"), 0, 10)? as u32,
        check_retry_delay: millis("enforce.check_retry_delay_ms", 0, 60_000)?,
        sends_per_s: rate("enforce.sends_per_s", 1000.0)?,
        // 0: no ceiling, the limit is learned from Telegram's 429s.
        calls_per_s: rate_in(layers.get("enforce.calls_per_s"), 0.0, 100_000.0)?,
        chat_sends_per_s: rate("enforce.chat_sends_per_s", 1000.0)?,
        group_sends_per_min: rate("enforce.group_sends_per_min", 100_000.0)?,
        timer_poll: millis("enforce.timer_poll_ms", 10, 600_000)?,
        health_interval: seconds(layers.get("enforce.health_check_s"), 1, 7 * 86_400)?,
    })
}

/// Empty (after trimming) means "not set".
fn optional<T>(
    leaf: &Leaf,
    parse: impl Fn(&Leaf) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    if leaf.value.trim().is_empty() {
        Ok(None)
    } else {
        parse(leaf).map(Some)
    }
}

fn non_empty_path(leaf: &Leaf) -> Result<PathBuf, ConfigError> {
    match leaf.value.trim() {
        "" => Err(leaf.invalid("is empty", "a directory path such as data")),
        path => Ok(PathBuf::from(path)),
    }
}

fn socket_addr(leaf: &Leaf) -> Result<SocketAddr, ConfigError> {
    leaf.value.trim().parse().map_err(|_| {
        leaf.invalid(
            format!("`{}` is not an address and port", leaf.value),
            "IP:PORT such as 127.0.0.1:8080 or [::1]:8080",
        )
    })
}

fn integer_in(leaf: &Leaf, min: i64, max: i64) -> Result<i64, ConfigError> {
    let expected = format!("a whole number from {min} to {max}");
    match leaf.value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err(leaf.invalid(format!("{n} is out of range"), expected)),
        Err(_) => Err(leaf.invalid(format!("`{}` is not a whole number", leaf.value), expected)),
    }
}

fn rate_in(leaf: &Leaf, min: f64, max: f64) -> Result<f64, ConfigError> {
    let expected = format!("a number from {min} to {max}, such as 0.8");
    match leaf.value.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && (min..=max).contains(&n) => Ok(n),
        Ok(n) => Err(leaf.invalid(format!("{n} is out of range"), expected)),
        Err(_) => Err(leaf.invalid(format!("`{}` is not a number", leaf.value), expected)),
    }
}

fn seconds(leaf: &Leaf, min: i64, max: i64) -> Result<Duration, ConfigError> {
    integer_in(leaf, min, max).map(|n| Duration::from_secs(n as u64))
}

fn http_url(leaf: &Leaf) -> Result<String, ConfigError> {
    let url = leaf.value.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(leaf.invalid(
            format!("`{}` is not an http(s) URL", leaf.value),
            "http://HOST[:PORT][/PATH] or https://…",
        )),
    }
}

/// A URL paths are added to (`/login`, `/telegram/<bot id>`): an http(s) URL with a host, read by
/// the WHATWG URL parser Nezuko's HTTP client uses, and returned as that parser writes it (host
/// lower-cased, a default port dropped), so the URL given to `setWebhook` is the one Telegram
/// reports back. No query or fragment, which would end up in front of the added path; no user
/// name or password: the URL is handed to Telegram and printed in sign-in links, and Telegram's
/// webhook deliveries carry no credentials of their own (they are checked by secret token).
fn base_url(leaf: &Leaf) -> Result<String, ConfigError> {
    let raw = leaf.value.trim();
    // A value that may hold a password (anything with an `@`) is never quoted back.
    let quoted = if raw.contains('@') {
        "the value".to_string()
    } else {
        format!("`{raw}`")
    };
    let expected = "http://HOST[:PORT][/PATH] or https://…, without credentials, ? or #";
    let url = match reqwest::Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url,
        _ => return Err(leaf.invalid(format!("{quoted} is not an http(s) URL"), expected)),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(leaf.invalid("holds a user name or password (before `@`)", expected));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(leaf.invalid(format!("{quoted} names no host"), expected));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(leaf.invalid(format!("{quoted} has a query or a fragment"), expected));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn redis_url(leaf: &Leaf) -> Result<Secret<String>, ConfigError> {
    let url = leaf.value.trim();
    let has_host = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .is_some_and(|rest| !rest.is_empty());
    if has_host {
        Ok(Secret::new(url.to_string()))
    } else {
        // The URL may hold a password, so the message does not quote it.
        Err(leaf.invalid(
            "is not a Redis URL",
            "redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://…, or empty for none",
        ))
    }
}

/// Addresses and CIDR ranges, comma-separated (`10.0.0.1, 192.168.0.0/16, ::1`).
fn networks(leaf: &Leaf) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    leaf.value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|network| network.trunc())
                .map_err(|_| {
                    leaf.invalid(
                        format!("`{part}` is not an IP address or CIDR range"),
                        "addresses or ranges separated by commas, such as 127.0.0.1, 10.0.0.0/8, ::1",
                    )
                })
        })
        .collect()
}

fn database_url(leaf: &Leaf) -> Result<DatabaseUrl, ConfigError> {
    DatabaseUrl::parse(&leaf.value).map_err(|err| leaf.invalid(err.problem, err.expected))
}

fn encryption_keys(leaf: &Leaf) -> Result<Vec<EncryptionKey>, ConfigError> {
    let parts: Vec<&str> = leaf
        .value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    let many = parts.len() > 1;
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            EncryptionKey::parse(part).map_err(|problem| {
                let which = if many { format!("key {} ", index + 1) } else { String::new() };
                // Never quote a key: even a malformed one may be most of a real one.
                leaf.invalid(
                    format!("{which}is not a Fernet key: {problem}"),
                    "32 bytes in url-safe base64 (44 characters ending in =), as `nezuko keygen` prints; several keys separated by commas",
                )
            })
        })
        .collect()
}

fn telegram_user_id(leaf: &Leaf) -> Result<Option<i64>, ConfigError> {
    let expected = "a Telegram user id (a positive whole number), or 0 for none";
    match leaf.value.trim() {
        "" | "0" => Ok(None),
        text => match text.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(leaf.invalid(
                format!("`{}` is not a Telegram user id", leaf.value),
                expected,
            )),
        },
    }
}

/// A Telegram chat id: any non-zero whole number (groups and channels are negative).
fn chat_id(leaf: &Leaf) -> Result<i64, ConfigError> {
    let expected = "a chat id, e.g. -1001234567890 for a group, or empty for none";
    match leaf.value.trim().parse::<i64>() {
        Ok(id) => crate::domain::check_chat_id(id)
            .map(|()| id)
            .map_err(|problem| leaf.invalid(problem, expected)),
        Err(_) => Err(leaf.invalid(
            format!("`{}` is not a Telegram chat id", leaf.value),
            expected,
        )),
    }
}

fn alert_sender(leaf: &Leaf) -> Result<String, ConfigError> {
    let config = crate::domain::AlertConfig {
        chat_id: None,
        sender: leaf.value.trim().to_string(),
    };
    config
        .validate()
        .map(|()| config.sender)
        .map_err(|problem| leaf.invalid(problem, "`login` or a fleet bot's @username"))
}

fn bot_token(leaf: &Leaf) -> Result<BotToken, ConfigError> {
    BotToken::parse(&leaf.value).map_err(|err| {
        leaf.invalid(
            format!("is not a bot token: {err}"),
            "the token BotFather gave, like 123456789:AAH…",
        )
    })
}

fn log_filter(leaf: &Leaf) -> Result<String, ConfigError> {
    let filter = leaf.value.trim();
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| filter.to_string())
        .map_err(|err| {
            leaf.invalid(
                format!("`{filter}` is not a log filter: {err}"),
                "tracing directives such as info or warn,nezuko=debug",
            )
        })
}

fn log_level(leaf: &Leaf) -> Result<tracing::Level, ConfigError> {
    leaf.value.trim().parse().map_err(|_| {
        leaf.invalid(
            format!("`{}` is not a log level", leaf.value),
            "one of trace, debug, info, warn, error",
        )
    })
}

/// A secret of at least 16 characters (shorter ones are guessable).
fn secret_text(leaf: &Leaf) -> Result<Secret<String>, ConfigError> {
    let text = leaf.value.trim();
    if text.len() < 16 {
        return Err(leaf.invalid(
            "is shorter than 16 characters",
            "a random string of 16 or more characters",
        ));
    }
    Ok(Secret::new(text.to_string()))
}

/// `telegram.mode`; webhook mode needs `server.public_url` (the address Telegram posts to).
fn telegram_mode(layers: &Layers) -> Result<TelegramMode, ConfigError> {
    let leaf = layers.get("telegram.mode");
    match leaf.value.trim() {
        "polling" | "" => Ok(TelegramMode::Polling),
        "webhook" if layers.get("server.public_url").value.trim().is_empty() => Err(leaf.invalid(
            "webhook mode needs `server.public_url`, the address Telegram posts updates to",
            "polling, or webhook with server.public_url set (https://HOST, reached by Telegram)",
        )),
        "webhook" => Ok(TelegramMode::Webhook),
        other => Err(leaf.invalid(format!("unknown mode `{other}`"), "polling or webhook")),
    }
}

fn role(leaf: &Leaf) -> Result<Role, ConfigError> {
    match leaf.value.trim() {
        "all" | "" => Ok(Role::All),
        "api" => Ok(Role::Api),
        "bots" => Ok(Role::Bots),
        other => Err(leaf.invalid(format!("unknown role `{other}`"), "all, api or bots")),
    }
}

fn log_format(leaf: &Leaf, environment: Environment) -> Result<LogFormat, ConfigError> {
    match leaf.value.trim() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        "auto" | "" => Ok(match environment {
            Environment::Local => LogFormat::Pretty,
            Environment::Production => LogFormat::Json,
        }),
        other => Err(leaf.invalid(format!("unknown format `{other}`"), "pretty, json or auto")),
    }
}
