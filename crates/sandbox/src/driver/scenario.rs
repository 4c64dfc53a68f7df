//! Load scenarios: the size of the world and the mix and rate of traffic, built in or from a JSON file.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The most events per second a scenario may ask for: far beyond what one sandbox process plays,
/// and a bound on what a mistyped rate makes it try.
pub const MAX_RATE: f64 = 1_000_000.0;

/// What to simulate. Every field has a default, so a file may name only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub bots: usize,
    /// Groups in total, spread evenly over the bots.
    pub groups: usize,
    /// Channels each group requires, drawn from a shared pool of `channels`.
    pub channels_per_group: usize,
    pub channels: usize,
    /// Members per group at the start.
    pub members_per_group: usize,
    /// Share of members not subscribed to their group's channels.
    pub non_subscriber_share: f64,
    /// Zipf exponent of who speaks in a group (1.0: a few members say most).
    pub zipf_exponent: f64,
    /// Events per second, and for how long.
    pub rate: f64,
    pub duration_s: f64,
    pub mix: Mix,
}

/// Relative weights of the event kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    pub message: f64,
    pub join: f64,
    pub channel_leave: f64,
    pub button: f64,
    /// A newcomer asks to join (join requests); each group's bot is then its guard bot, so every
    /// request carries a query the bot must answer within 10 s.
    pub join_request: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            message: 0.90,
            join: 0.06,
            channel_leave: 0.02,
            button: 0.02,
            join_request: 0.0,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "smoke".into(),
            bots: 2,
            groups: 4,
            channels_per_group: 1,
            channels: 2,
            members_per_group: 20,
            non_subscriber_share: 0.05,
            zipf_exponent: 1.0,
            rate: 200.0,
            duration_s: 5.0,
            mix: Mix::default(),
        }
    }
}

impl Scenario {
    /// A built-in scenario by name, or a JSON file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Self> {
        let scenario = match name_or_path {
            "smoke" => Self::default(),
            "verify" => Self {
                name: "verify".into(),
                bots: 100,
                groups: 1000,
                channels: 100,
                members_per_group: 50,
                rate: 20_000.0,
                duration_s: 30.0,
                ..Self::default()
            },
            // One bot carrying a busy community: every update goes through one token's
            // `getUpdates`, so what one bot can do is measured, not what a fleet spreads out.
            "busy-bot" => Self {
                name: "busy-bot".into(),
                bots: 1,
                groups: 50,
                channels: 5,
                members_per_group: 50,
                rate: 1_000.0,
                duration_s: 30.0,
                ..Self::default()
            },
            "raid" => Self {
                name: "raid".into(),
                bots: 1,
                groups: 1,
                channels: 1,
                members_per_group: 5,
                rate: 500.0 / 60.0,
                duration_s: 60.0,
                non_subscriber_share: 0.5,
                mix: Mix {
                    message: 0.0,
                    join: 1.0,
                    channel_leave: 0.0,
                    button: 0.0,
                    join_request: 0.0,
                },
                ..Self::default()
            },
            // A raid of join requests on guarded groups: 500 in 5 s, half from non-subscribers.
            // Every request carries a guard query the bot must answer within its 10 s.
            "join-raid" => Self {
                name: "join-raid".into(),
                bots: 1,
                groups: 5,
                channels: 1,
                members_per_group: 5,
                rate: 100.0,
                duration_s: 5.0,
                non_subscriber_share: 0.5,
                mix: Mix {
                    message: 0.0,
                    join: 0.0,
                    channel_leave: 0.0,
                    button: 0.0,
                    join_request: 1.0,
                },
                ..Self::default()
            },
            path => {
                let text = std::fs::read_to_string(Path::new(path))
                    .with_context(|| format!("`{path}` is neither a built-in scenario (smoke, verify, busy-bot, raid, join-raid) nor a readable file"))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("the scenario file {path} is not valid"))?
            }
        };
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks the scenario can be played (also after a command line changed its rate or
    /// duration).
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.zipf_exponent >= 0.0 && self.zipf_exponent.is_finite()) {
            bail!("zipf_exponent must be a number of at least 0 (1.0: a few members say most)");
        }
        if self.bots == 0
            || self.groups < self.bots
            || self.channels == 0
            || self.members_per_group == 0
        {
            bail!(
                "a scenario needs at least one bot, one group per bot, one channel and one member per group"
            );
        }
        let playable = (0.0..=1.0).contains(&self.non_subscriber_share)
            && self.rate > 0.0
            && self.rate <= MAX_RATE
            && self.duration_s > 0.0
            && self.duration_s.is_finite();
        if !playable {
            bail!(
                "non_subscriber_share must be within 0..1, rate above 0 and at most {MAX_RATE} events/s, duration_s a number of seconds above 0"
            );
        }
        let m = &self.mix;
        let weights = [m.message, m.join, m.channel_leave, m.button, m.join_request];
        if weights.iter().any(|w| *w < 0.0) || weights.iter().sum::<f64>() <= 0.0 {
            bail!("the mix weights must be non-negative and not all zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_scenarios_are_valid_and_files_may_be_partial() {
        for name in ["smoke", "verify", "busy-bot", "raid"] {
            assert_eq!(Scenario::load(name).unwrap().name, name);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, r#"{"name": "mine", "bots": 3, "groups": 6}"#).unwrap();
        let mine = Scenario::load(path.to_str().unwrap()).unwrap();
        assert_eq!((mine.bots, mine.groups, mine.rate), (3, 6, 200.0));
        std::fs::write(&path, r#"{"bots": 0}"#).unwrap();
        assert!(Scenario::load(path.to_str().unwrap()).is_err());
        std::fs::write(&path, r#"{"zipf_exponent": -1}"#).unwrap();
        assert!(
            Scenario::load(path.to_str().unwrap())
                .unwrap_err()
                .to_string()
                .contains("zipf_exponent")
        );
        assert!(
            Scenario::load("no-such-scenario")
                .unwrap_err()
                .to_string()
                .contains("built-in")
        );
    }
}
