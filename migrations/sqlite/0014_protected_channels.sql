-- What kind of chat a protected chat is, as Telegram's `Chat.type` names it: `supergroup` (and
-- `group` for a basic group seen before its upgrade) is enforced on messages and joins; a `channel`
-- is protected at the door only, through join requests (Telegram lets no one mute a reader).
-- Every row stored before this migration came from `/protect` in a group.
ALTER TABLE protected_groups ADD COLUMN chat_type TEXT NOT NULL DEFAULT 'supergroup'
    CHECK (chat_type IN ('group', 'supergroup', 'channel'));
