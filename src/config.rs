//! Typed configuration, read once from the environment at start-up.
//!
//! Every variable has a working default (see the README's table), so a bare
//! `promo-engine serve` runs on a stock machine. A value that does not parse is a
//! start-up error naming the variable; nothing reads the environment later.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use ipnet::IpNet;
use url::Url;

/// The database when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/promo_engine";

/// How queued emails leave the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// Write each message as an `.eml` file under `DATA_DIR/mail` and log it.
    File,
    /// Send over SMTP to `SMTP_URL`.
    Smtp,
}

/// The whole configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: the PostgreSQL database; created when missing. When
    /// unset, the default address (`PROMO_ENGINE_DEFAULT_DATABASE_URL`, for
    /// tests; else [`DEFAULT_DATABASE_URL`]).
    pub database_url: String,
    /// True when `DATABASE_URL` was unset, so the command line may stand a
    /// private cluster in when nothing answers there (`crate::private_cluster`).
    pub database_url_is_default: bool,
    /// `DATABASE_POOL_SIZE`: connections kept by the pool.
    pub database_pool_size: usize,
    /// `BIND`: the HTTP listen address (port 0 picks a free one).
    pub bind: SocketAddr,
    /// `HTTP_WORKERS`: HTTP worker threads; `None` means one per core.
    pub http_workers: Option<usize>,
    /// `ADMIN_USERNAME`: the admin account, created or updated at start-up.
    pub admin_username: String,
    /// `ADMIN_PASSWORD`: when unset, a new admin gets a generated password.
    pub admin_password: Option<String>,
    /// `RESERVATION_HOLD_SECONDS`: how long a reserved unit stays held.
    pub reservation_hold: Duration,
    /// `REGISTRY_RESYNC_SECONDS`: how often the promo registry checks its
    /// snapshot against PostgreSQL.
    pub registry_resync_interval: Duration,
    /// `NOTIFY_TIMEZONE`: the zone whose calendar day bounds "one notification a day".
    pub notify_timezone: Tz,
    /// `RATE_LIMIT_SUBSCRIBE_PER_MINUTE`: raffle sign-ups per client address; 0 is off.
    pub rate_limit_subscribe_per_minute: u32,
    /// `LOGIN_FAILURES_PER_MINUTE`: failed sign-ins allowed per username and per
    /// client address before further attempts are refused unchecked; 0 is off.
    pub login_failures_per_minute: u32,
    /// `TRUSTED_PROXIES`: the reverse proxies whose `X-Forwarded-For` names
    /// the client (CIDR blocks or single addresses; default none).
    pub trusted_proxies: Vec<IpNet>,
    /// `PUBLIC_BASE_URL`: the externally visible base for links in emails.
    pub public_base_url: Url,
    /// `MAIL_TRANSPORT`: `file` or `smtp`.
    pub mail_transport: MailTransport,
    /// `SMTP_URL`: the SMTP server when `MAIL_TRANSPORT=smtp`.
    pub smtp_url: String,
    /// `MAIL_FROM`: the sender of every email.
    pub mail_from: String,
    /// `DATA_DIR`: where files the service writes (emails) go.
    pub data_dir: PathBuf,
    /// `NATS_URL`, `INSTANCE_ID`, `NATS_SUBJECT_PREFIX`: cluster mode, when set.
    pub cluster: Option<ClusterConfig>,
}

/// How one instance of several joins the others (`NATS_URL` set).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `NATS_URL`: the NATS server every instance shares.
    pub nats_url: String,
    /// `INSTANCE_ID`: this instance's name (default: random).
    pub instance_id: String,
    /// `NATS_SUBJECT_PREFIX`: the first tokens of every subject, so that
    /// clusters on different databases can share one NATS server (default:
    /// `promo-engine.` and the database name).
    pub subject_prefix: String,
}

/// A variable whose value does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Vars { lookup: &lookup };
        let bind: SocketAddr = vars.parse("BIND", "127.0.0.1:8080")?;
        let public_base_url =
            vars.parse("PUBLIC_BASE_URL", &format!("http://{}", display_host(bind)))?;
        let default_database_url =
            vars.text("PROMO_ENGINE_DEFAULT_DATABASE_URL", DEFAULT_DATABASE_URL);
        let database_url = vars.text("DATABASE_URL", &default_database_url);
        Ok(Config {
            database_url: database_url.clone(),
            database_url_is_default: lookup("DATABASE_URL").is_none_or(|url| url.is_empty()),
            database_pool_size: vars.positive("DATABASE_POOL_SIZE", 16)?,
            bind,
            http_workers: vars.optional_positive("HTTP_WORKERS")?,
            admin_username: vars.text("ADMIN_USERNAME", "admin"),
            admin_password: lookup("ADMIN_PASSWORD").filter(|value| !value.is_empty()),
            reservation_hold: Duration::from_secs(vars.positive("RESERVATION_HOLD_SECONDS", 60)?),
            registry_resync_interval: Duration::from_secs(
                vars.positive("REGISTRY_RESYNC_SECONDS", 30)?,
            ),
            notify_timezone: vars.parse("NOTIFY_TIMEZONE", "UTC")?,
            rate_limit_subscribe_per_minute: vars.parse("RATE_LIMIT_SUBSCRIBE_PER_MINUTE", "30")?,
            login_failures_per_minute: vars.parse("LOGIN_FAILURES_PER_MINUTE", "10")?,
            trusted_proxies: vars.networks("TRUSTED_PROXIES")?,
            public_base_url,
            mail_transport: vars.mail_transport()?,
            smtp_url: vars.text("SMTP_URL", "smtp://127.0.0.1:25"),
            mail_from: vars.text("MAIL_FROM", "promo-engine <no-reply@localhost>"),
            data_dir: PathBuf::from(vars.text("DATA_DIR", "./var")),
            cluster: vars.cluster(&database_url)?,
        })
    }
}

/// A fresh instance name: eight random hex digits.
fn random_instance_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// True for a NATS subject token that needs no escaping.
fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The database a URL names, as a subject token (`db` when it names none).
fn database_name(database_url: &str) -> String {
    let name: String = Url::parse(database_url)
        .ok()
        .and_then(|url| url.path_segments()?.next_back().map(str::to_owned))
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "db".to_owned()
    } else {
        name
    }
}

/// Names an address so that a browser on this machine can follow links to it.
fn display_host(bind: SocketAddr) -> String {
    if bind.ip().is_unspecified() {
        format!("127.0.0.1:{}", bind.port())
    } else {
        bind.to_string()
    }
}

struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn text(&self, name: &str, default: &str) -> String {
        (self.lookup)(name)
            .filter(|value| !value.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    fn parse<T>(&self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.text(name, default);
        value.trim().parse().map_err(|error: T::Err| ConfigError {
            name,
            value,
            reason: error.to_string(),
        })
    }

    fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + std::fmt::Display + PartialOrd + Default,
        T::Err: std::fmt::Display,
    {
        let value: T = self.parse(name, &default.to_string())?;
        if value <= T::default() {
            return Err(ConfigError {
                name,
                value: value.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    fn optional_positive(&self, name: &'static str) -> Result<Option<usize>, ConfigError> {
        match (self.lookup)(name).filter(|value| !value.is_empty()) {
            None => Ok(None),
            Some(_) => self.positive(name, 1).map(Some),
        }
    }

    /// A list of CIDR blocks or single addresses, split by commas or spaces.
    fn networks(&self, name: &'static str) -> Result<Vec<IpNet>, ConfigError> {
        let value = self.text(name, "");
        value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ConfigError {
                        name,
                        value: value.clone(),
                        reason: format!("`{item}` is not an address or a CIDR block"),
                    })
            })
            .collect()
    }

    /// Cluster mode's settings, when `NATS_URL` is set.
    fn cluster(&self, database_url: &str) -> Result<Option<ClusterConfig>, ConfigError> {
        let nats_url = self.text("NATS_URL", "");
        if nats_url.is_empty() {
            return Ok(None);
        }
        let instance_id = self.text("INSTANCE_ID", &random_instance_id());
        if !is_subject_token(&instance_id) {
            return Err(ConfigError {
                name: "INSTANCE_ID",
                value: instance_id,
                reason: "use letters, digits, `-` and `_` only".into(),
            });
        }
        let database = database_name(database_url);
        let subject_prefix = self.text("NATS_SUBJECT_PREFIX", &format!("promo-engine.{database}"));
        if !subject_prefix.split('.').all(is_subject_token) {
            return Err(ConfigError {
                name: "NATS_SUBJECT_PREFIX",
                value: subject_prefix,
                reason: "use dot-separated tokens of letters, digits, `-` and `_`".into(),
            });
        }
        Ok(Some(ClusterConfig {
            nats_url,
            instance_id,
            subject_prefix,
        }))
    }

    fn mail_transport(&self) -> Result<MailTransport, ConfigError> {
        match self.text("MAIL_TRANSPORT", "file").as_str() {
            "file" => Ok(MailTransport::File),
            "smtp" => Ok(MailTransport::Smtp),
            other => Err(ConfigError {
                name: "MAIL_TRANSPORT",
                value: other.to_owned(),
                reason: "must be `file` or `smtp`".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn an_empty_environment_gives_working_defaults() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.reservation_hold, Duration::from_secs(60));
        assert_eq!(config.registry_resync_interval, Duration::from_secs(30));
        assert_eq!(config.notify_timezone, Tz::UTC);
        assert_eq!(config.rate_limit_subscribe_per_minute, 30);
        assert_eq!(config.login_failures_per_minute, 10);
        assert_eq!(config.mail_transport, MailTransport::File);
        assert_eq!(config.public_base_url.as_str(), "http://127.0.0.1:8080/");
        assert!(config.database_url.ends_with("/promo_engine"));
        assert!(config.database_url_is_default);
    }

    #[test]
    fn a_given_database_url_is_never_replaced() {
        let config = config_from(&[("DATABASE_URL", "postgres://db.example/x")]).unwrap();
        assert_eq!(config.database_url, "postgres://db.example/x");
        assert!(!config.database_url_is_default);
        let config = config_from(&[(
            "PROMO_ENGINE_DEFAULT_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/promo_engine",
        )])
        .unwrap();
        assert_eq!(
            config.database_url,
            "postgres://postgres@127.0.0.1:1/promo_engine"
        );
        assert!(config.database_url_is_default);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = config_from(&[("RESERVATION_HOLD_SECONDS", "soon")]).unwrap_err();
        assert!(error.to_string().contains("RESERVATION_HOLD_SECONDS"));
        let error = config_from(&[("NOTIFY_TIMEZONE", "Mars/Olympus")]).unwrap_err();
        assert!(error.to_string().contains("NOTIFY_TIMEZONE"));
        let error = config_from(&[("MAIL_TRANSPORT", "pigeon")]).unwrap_err();
        assert!(error.to_string().contains("MAIL_TRANSPORT"));
    }

    #[test]
    fn a_zero_hold_is_refused() {
        let error = config_from(&[("RESERVATION_HOLD_SECONDS", "0")]).unwrap_err();
        assert!(error.to_string().contains("at least 1"));
    }

    #[test]
    fn trusted_proxies_are_read_as_networks() {
        assert!(config_from(&[]).unwrap().trusted_proxies.is_empty());
        let config = config_from(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1 ::1")]).unwrap();
        let listed: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|net| net.to_string())
            .collect();
        assert_eq!(listed, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        let error = config_from(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        assert!(error.to_string().contains("TRUSTED_PROXIES"));
    }

    #[test]
    fn cluster_mode_needs_nats_url_and_names_itself() {
        assert!(config_from(&[]).unwrap().cluster.is_none());
        let config = config_from(&[
            ("NATS_URL", "nats://127.0.0.1:4222"),
            ("DATABASE_URL", "postgres://db.example/shop_1"),
        ])
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.subject_prefix, "promo-engine.shop_1");
        assert_eq!(cluster.instance_id.len(), 8);
        let error = config_from(&[("NATS_URL", "nats://x"), ("INSTANCE_ID", "a.b")]).unwrap_err();
        assert!(error.to_string().contains("INSTANCE_ID"));
    }

    #[test]
    fn a_zone_name_is_read() {
        let config = config_from(&[("NOTIFY_TIMEZONE", "America/Mexico_City")]).unwrap();
        assert_eq!(config.notify_timezone, Tz::America__Mexico_City);
    }
}
