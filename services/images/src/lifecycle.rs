//! A tag's lifecycle: built -> pushed -> tested -> released -> deprecated ->
//! deleted. Each move goes one step forward (deletion may come from any
//! state) and needs a role: developers mark tags tested, operators release
//! and deprecate, tenant administrators delete. Released and deprecated tags
//! are immutable: the registry proxy refuses a push over them.

use kernel::caller::Role;
use kernel::{Error, Result};

/// Where a tag is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Built by a pipeline, not yet in the registry.
    Built,
    /// In the registry.
    Pushed,
    /// Passed its tests.
    Tested,
    /// Released: deploys may use it; immutable.
    Released,
    /// No longer recommended; still immutable.
    Deprecated,
    /// Gone.
    Deleted,
}

impl State {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Built => "built",
            Self::Pushed => "pushed",
            Self::Tested => "tested",
            Self::Released => "released",
            Self::Deprecated => "deprecated",
            Self::Deleted => "deleted",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// Not one of the six names; names `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        Ok(match raw {
            "built" => Self::Built,
            "pushed" => Self::Pushed,
            "tested" => Self::Tested,
            "released" => Self::Released,
            "deprecated" => Self::Deprecated,
            "deleted" => Self::Deleted,
            _ => {
                return Err(Error::invalid(
                    field,
                    "must be built, pushed, tested, released, deprecated or deleted",
                ));
            }
        })
    }

    /// Whether a push may replace the tag's image.
    pub fn immutable(self) -> bool {
        matches!(self, Self::Released | Self::Deprecated)
    }

    fn next(self) -> Option<Self> {
        Some(match self {
            Self::Built => Self::Pushed,
            Self::Pushed => Self::Tested,
            Self::Tested => Self::Released,
            Self::Released => Self::Deprecated,
            Self::Deprecated => Self::Deleted,
            Self::Deleted => return None,
        })
    }

    /// The role a move into this state needs.
    pub fn role_to_enter(self) -> Role {
        match self {
            Self::Built | Self::Pushed | Self::Tested => Role::Developer,
            Self::Released | Self::Deprecated => Role::Operator,
            Self::Deleted => Role::TenantAdmin,
        }
    }

    /// Checks a move from `self` to `to`.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] naming both states when the move skips
    /// a step, goes back, or stays.
    pub fn check_move(self, to: Self) -> Result<()> {
        if self == to {
            return Err(Error::FailedPrecondition(format!("the tag is already {}", to.as_str())));
        }
        if to == Self::Deleted || self.next() == Some(to) {
            return Ok(());
        }
        let hint = self
            .next()
            .map_or_else(|| "none".to_string(), |n| format!("{} (or deleted)", n.as_str()));
        Err(Error::FailedPrecondition(format!(
            "a {} tag cannot become {}; its next state is {hint}",
            self.as_str(),
            to.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_move_one_step_forward_or_to_deleted() {
        assert!(State::Pushed.check_move(State::Tested).is_ok());
        assert!(State::Tested.check_move(State::Released).is_ok());
        assert!(State::Released.check_move(State::Deprecated).is_ok());
        assert!(State::Pushed.check_move(State::Deleted).is_ok());
        let skip = State::Pushed.check_move(State::Released).unwrap_err();
        assert!(skip.to_string().contains("next state is tested"), "{skip}");
        assert!(State::Released.check_move(State::Tested).is_err());
        assert!(State::Deleted.check_move(State::Pushed).is_err());
        assert!(State::Tested.check_move(State::Tested).is_err());
    }

    #[test]
    fn released_and_deprecated_tags_are_immutable() {
        assert!(State::Released.immutable() && State::Deprecated.immutable());
        assert!(!State::Pushed.immutable() && !State::Tested.immutable());
        assert_eq!(State::Released.role_to_enter(), Role::Operator);
        for s in ["built", "pushed", "tested", "released", "deprecated", "deleted"] {
            assert_eq!(State::parse("state", s).unwrap().as_str(), s);
        }
        assert_eq!(State::parse("state", "gold").unwrap_err().field(), Some("state"));
    }
}
