-- Why a bot is in its run state, as a word programs decide on (see `domain::ReasonCode`);
-- `run_reason` beside it stays the sentence people read. Existing rows have none until their
-- next transition.
ALTER TABLE bot_instances ADD COLUMN run_reason_code TEXT;
