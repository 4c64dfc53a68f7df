//! The operator's levers: injected faults, flood limits, tokens revoked, restored or rotated as in
//! BotFather, and the sandbox's clock.

use super::ControlError;
use crate::faults::{Fault, RateLimits};
use crate::{Sandbox, lock};

impl Sandbox {
    pub fn inject_fault(&self, fault: Fault) {
        lock(&self.inner.faults).add(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// How many calls injected faults have acted on so far, so a test knows when a held call has
    /// reached the sandbox.
    pub fn faults_taken(&self) -> u64 {
        lock(&self.inner.faults).taken()
    }

    pub fn set_rate_limits(&self, limits: RateLimits) {
        lock(&self.inner.config).rate_limits = limits;
    }

    /// Every later call with this bot's token is answered 401, as after a revocation in BotFather.
    pub fn revoke_token(&self, bot: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        let state = world
            .bots
            .get_mut(&bot)
            .ok_or(ControlError::UnknownAccount(bot))?;
        state.revoked = true;
        // A waiting poll answers 401 at once, as the next request would.
        state.wake.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The revoked token works again.
    pub fn restore_token(&self, bot: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        let state = world
            .bots
            .get_mut(&bot)
            .ok_or(ControlError::UnknownAccount(bot))?;
        state.revoked = false;
        Ok(())
    }

    /// BotFather's "revoke current token": the bot gets a new token and the old one stops working
    /// (401 from the next request on).
    pub fn rotate_token(&self, bot: i64) -> Result<String, ControlError> {
        let mut world = self.world();
        let token = world.new_token(bot);
        let old = {
            let state = world
                .bots
                .get_mut(&bot)
                .ok_or(ControlError::UnknownAccount(bot))?;
            state.wake.send_modify(|n| *n += 1);
            std::mem::replace(&mut state.token, token.clone())
        };
        world.tokens.remove(&old);
        world.tokens.insert(token.clone(), bot);
        Ok(token)
    }

    /// Moves the sandbox's clock forward, so timed restrictions and bans expire; backward dates
    /// what happens next in the past (updates that waited while a bot was down). At most ten years
    /// either way in all.
    pub fn advance_clock(&self, seconds: i64) {
        const TEN_YEARS_S: i64 = 10 * 366 * 24 * 3600;
        let mut world = self.world();
        world.clock_offset_s = (world.clock_offset_s + seconds.clamp(-TEN_YEARS_S, TEN_YEARS_S))
            .clamp(-TEN_YEARS_S, TEN_YEARS_S);
    }
}
