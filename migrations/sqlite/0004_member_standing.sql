-- What Nezuko needs to act only on Telegram's current truth (see README, "Whose decision wins").
--
-- restricted_until:  the until_date Nezuko sent when it restricted the member (0: until verified;
--                    NULL: Nezuko did not restrict, e.g. a warning). Before lifting, Nezuko reads the
--                    member's status afresh and lifts only if it is still exactly this restriction.
-- prior_permissions: the member's permissions before Nezuko restricted them, when an administrator
--                    had already limited them (NULL: a plain member). Lifting restores these, so an
--                    administrator's partial restriction survives Nezuko's.
-- prior_until:       that earlier restriction's until_date.
-- member_name:       the name the warning shows, so a warning naming several members can be
--                    written again without one of them.
-- warning_template:  which warning text named the member (warning_join, warning_message, …).
-- warning_thread_id: the forum topic the warning was posted in.
-- end_reason:        why the record ended: verified, restored, expired, admin_lifted,
--                    admin_restricted, banned, unprotected, removed.
ALTER TABLE member_restrictions ADD COLUMN restricted_until BIGINT;
ALTER TABLE member_restrictions ADD COLUMN prior_permissions TEXT;
ALTER TABLE member_restrictions ADD COLUMN prior_until BIGINT;
ALTER TABLE member_restrictions ADD COLUMN member_name TEXT;
ALTER TABLE member_restrictions ADD COLUMN warning_template TEXT;
ALTER TABLE member_restrictions ADD COLUMN warning_thread_id BIGINT;
ALTER TABLE member_restrictions ADD COLUMN end_reason TEXT;
CREATE INDEX member_restrictions_warning ON member_restrictions (bot_instance_id, chat_id, warning_message_id)
    WHERE lifted_at IS NULL;
