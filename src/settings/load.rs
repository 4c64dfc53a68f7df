//! Layering of the configuration sources into one table of leaves, each remembering its origin.
//!
//! The embedded `config/base.toml` defines the set of keys: a key that is not in it, from any layer,
//! is an error (a typo must not be ignored). Values stay text here; [`super::parse`] types them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{ConfigError, Settings};

/// The defaults, compiled in so the binary runs from any directory.
const BASE_TOML: &str = include_str!("../../config/base.toml");

/// Variables of the original Python platform and the key each one sets.
const LEGACY_VARIABLES: [(&str, &str); 5] = [
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("ENCRYPTION_KEY", "vault.keys"),
    ("BOT_OWNER_TELEGRAM_ID", "auth.owner_telegram_id"),
    ("LOGIN_BOT_TOKEN", "auth.login_bot_token"),
];

const PREFIX: &str = "NEZUKO_";
/// `NEZUKO_*` variables that steer loading itself rather than set a key.
const LOADER_VARIABLES: [&str; 2] = ["NEZUKO_ENV", "NEZUKO_CONFIG_DIR"];

/// Which overlay applies, from `NEZUKO_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Production => "production",
        }
    }
}

/// One configured value and where it was set.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub key: String,
    pub value: String,
    pub origin: String,
}

impl Leaf {
    /// An error about this value, naming the key and where it was set.
    pub fn invalid(&self, problem: impl Into<String>, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            key: self.key.clone(),
            origin: self.origin.clone(),
            problem: problem.into(),
            expected: expected.into(),
        }
    }
}

/// The merged configuration, before typing.
#[derive(Debug)]
pub struct Layers {
    leaves: BTreeMap<String, Leaf>,
}

impl Layers {
    /// The leaf for `key`. Every key of base.toml is present, so a miss is a typo in our code.
    pub fn get(&self, key: &str) -> &Leaf {
        self.leaves
            .get(key)
            .unwrap_or_else(|| panic!("`{key}` is not a key of config/base.toml"))
    }

    fn set(&mut self, key: &str, value: String, origin: String) -> Result<(), ConfigError> {
        match self.leaves.get_mut(key) {
            Some(leaf) => {
                leaf.value = value;
                leaf.origin = origin;
                Ok(())
            }
            None => Err(ConfigError {
                key: key.to_string(),
                origin,
                problem: "unknown key".into(),
                expected: format!(
                    "one of {}",
                    self.leaves.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    fn overlay_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|err: toml::de::Error| ConfigError {
            key: origin.to_string(),
            origin: String::new(),
            problem: format!("not valid TOML: {}", err.message()),
            expected: "a TOML file like config/base.toml".into(),
        })?;
        let mut flat = Vec::new();
        flatten("", &table, origin, &mut flat)?;
        for (key, value) in flat {
            self.set(&key, value, origin.to_string())?;
        }
        Ok(())
    }
}

/// Loads the settings from `NEZUKO_CONFIG_DIR` (default `config`) and the process environment.
pub fn load() -> Result<Settings, ConfigError> {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let dir = env
        .get("NEZUKO_CONFIG_DIR")
        .cloned()
        .unwrap_or_else(|| "config".into());
    load_from(Path::new(&dir), &env)
}

/// Loads the settings from the files in `config_dir` (each optional) and the variables in `env`.
pub fn load_from(
    config_dir: &Path,
    env: &HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    let environment = parse_environment(env.get("NEZUKO_ENV"))?;
    let layers = merge(config_dir, environment, env)?;
    super::parse::settings(&layers, environment)
}

fn parse_environment(value: Option<&String>) -> Result<Environment, ConfigError> {
    match value.map(|v| v.trim()) {
        None | Some("") | Some("local") => Ok(Environment::Local),
        Some("production") => Ok(Environment::Production),
        Some(other) => Err(ConfigError {
            key: "NEZUKO_ENV".into(),
            origin: "environment".into(),
            problem: format!("unknown environment `{other}`"),
            expected: "local or production".into(),
        }),
    }
}

fn merge(
    config_dir: &Path,
    environment: Environment,
    env: &HashMap<String, String>,
) -> Result<Layers, ConfigError> {
    let mut layers = Layers {
        leaves: BTreeMap::new(),
    };
    let base: toml::Table = BASE_TOML
        .parse()
        .expect("embedded config/base.toml is valid TOML");
    let mut defaults = Vec::new();
    flatten("", &base, "defaults", &mut defaults)
        .expect("embedded base.toml has only scalar leaves");
    for (key, value) in defaults {
        let origin = "built-in defaults".to_string();
        let leaf = Leaf {
            key: key.clone(),
            value,
            origin,
        };
        layers.leaves.insert(key, leaf);
    }

    for name in [
        "base.toml".to_string(),
        format!("{}.toml", environment.as_str()),
    ] {
        let path = config_dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => layers.overlay_toml(&text, &path.display().to_string())?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(ConfigError {
                    key: path.display().to_string(),
                    origin: String::new(),
                    problem: format!("cannot be read: {err}"),
                    expected: "a readable file, or none at all".into(),
                });
            }
        }
    }

    for (variable, key) in LEGACY_VARIABLES {
        if let Some(value) = env.get(variable) {
            layers.set(
                key,
                value.clone(),
                format!("environment variable {variable}"),
            )?;
        }
    }

    let mut prefixed: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && !LOADER_VARIABLES.contains(&name.as_str()))
        .collect();
    prefixed.sort();
    for (name, value) in prefixed {
        let key = name[PREFIX.len()..].to_ascii_lowercase().replace("__", ".");
        layers.set(&key, value.clone(), format!("environment variable {name}"))?;
    }
    Ok(layers)
}

/// Turns nested tables into dotted keys with text values.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    origin: &str,
    out: &mut Vec<(String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(&key, inner, origin, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) => {
                return Err(ConfigError {
                    key,
                    origin: origin.to_string(),
                    problem: "a list is not accepted here".into(),
                    expected: "a single value (several keys go in one comma-separated string)"
                        .into(),
                });
            }
        };
        out.push((key, text));
    }
    Ok(())
}
