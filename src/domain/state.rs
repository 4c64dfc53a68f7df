//! The two halves of a bot's lifecycle: what the admin wants and what the service observed.
//!
//! Both are stored as lowercase words in `bot_instances` (`desired_state`, `run_state`), guarded by
//! CHECK constraints in the migrations, so the spellings here and there must agree.

use std::fmt;
use std::str::FromStr;

/// What an admin asked for. The database is the single source of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Enabled,
    Disabled,
}

/// What the supervisor last observed of a bot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Stopped,
    Starting,
    Running,
    Backoff,
    Stopping,
    Failed,
}

/// A stored state word that this build does not know (for example written by a newer version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state `{0}`")]
pub struct UnknownState(pub String);

impl DesiredState {
    pub const ALL: [DesiredState; 2] = [Self::Enabled, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        Self::Stopped,
        Self::Starting,
        Self::Running,
        Self::Backoff,
        Self::Stopping,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Stopping => "stopping",
            Self::Failed => "failed",
        }
    }
}

/// Parses by matching against `ALL`, so adding a variant cannot forget the parser.
macro_rules! word_enum_traits {
    ($ty:ty) => {
        impl FromStr for $ty {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty>::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| UnknownState(s.to_string()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum_traits!(DesiredState);
word_enum_traits!(RunState);

/// Lets `sqlx::FromRow` read the stored words (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for DesiredState {
    type Error = UnknownState;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl TryFrom<String> for RunState {
    type Error = UnknownState;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_word() {
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
        }
        for state in DesiredState::ALL {
            assert_eq!(state.to_string().parse::<DesiredState>(), Ok(state));
        }
        assert!("paused".parse::<RunState>().is_err());
        // The wire form (API answers, their schema) is the stored word too.
        for state in RunState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        for state in DesiredState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
